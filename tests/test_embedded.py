"""The embedded dataset: layout, determinism, disjoint splits, reference levels."""

import numpy as np
import pytest

from refsr.core.errors import RefsrError
from refsr.core.imageio import read_image
from refsr.data import LEVELS, build_to, read_manifest
from refsr.data.embedded import LEVEL_SPECS, build_embedded

CFG = dict(kind="embedded", test_photos=["motorcycle", "astronaut", "chelsea"],
           train_photos=["hubble_deep_field", "brick"], hr_size=98, train_size=64,
           train_pairs=4, seed=0)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("embedded")
    return build_to("embedded", CFG, root, 4)


def test_layout_and_manifest(built):
    assert [g.name for g in built.groups] == CFG["test_photos"]
    assert len(built.train) == CFG["train_pairs"]
    for g in built.groups:
        hr = read_image(g.hr)
        assert hr.shape == (96, 96, 3)  # 98 rounded down to a multiple of 4
        assert list(g.refs) == list(LEVELS)
        assert [g.levels[r] for r in g.refs] == list(LEVELS)
    assert built.has_levels
    again = read_manifest(built.root / "manifest.csv")
    assert [g.refs for g in again.groups] == [g.refs for g in built.groups]


def test_deterministic(tmp_path, built):
    other = build_embedded("embedded", CFG, tmp_path, 4)
    for a, b in zip(built.groups, other.groups, strict=True):
        for level in LEVELS:
            assert np.array_equal(read_image(a.refs[level]), read_image(b.refs[level]))


def test_level_specs_get_harder():
    specs = [LEVEL_SPECS[f"L{k}"] for k in range(1, 5)]
    assert all(a.shift < b.shift and a.jitter < b.jitter and a.scale >= b.scale
               for a, b in zip(specs, specs[1:], strict=False))


def test_l1_closer_to_hr_than_l5(built):
    for g in built.groups:
        hr = read_image(g.hr).astype(float)
        err = {lv: np.abs(read_image(g.refs[lv]).astype(float) - hr).mean() for lv in ("L1", "L5")}
        assert err["L1"] < err["L5"], g.name


def test_train_and_test_photos_must_be_disjoint(tmp_path):
    cfg = dict(CFG, train_photos=["astronaut"])
    with pytest.raises(RefsrError, match="overlaps the test photos"):
        build_embedded("embedded", cfg, tmp_path, 4)


def test_unknown_photo(tmp_path):
    with pytest.raises(RefsrError, match=r"unknown photo\(s\) \['nope'\]"):
        build_to("embedded", dict(CFG, test_photos=["nope"]), tmp_path / "x", 4)
    assert not (tmp_path / "x" / "manifest.csv").exists()
    assert not list(tmp_path.glob(".*staging*"))

"""The standard RefSR test sets (sun80, urban100, manga109, wrsr) on small folders in their
published layouts, built from crops of scikit-image photos."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from refsr.core.config import validate
from refsr.core.errors import RefsrError
from refsr.core.imageio import read_image
from refsr.data import build, build_to, check_datasets, read_manifest
from refsr.data.common import DatasetError
from refsr.data.lr import lr_path, write_lr
from refsr.data.resize import modcrop
from refsr.data.sun80 import choose_match

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left")


def photo(name: str) -> np.ndarray:
    if name == "motorcycle_left":
        return skimage.data.stereo_motorcycle()[0]
    return getattr(skimage.data, name)()


def crop(name: str, y: int, x: int, h: int = 40, w: int = 48) -> np.ndarray:
    return np.ascontiguousarray(photo(name)[y:y + h, x:x + w, :3])


def save(path: Path, arr: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)
    return path


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def message(name: str, cfg: dict, out: Path) -> str:
    with pytest.raises(RefsrError) as exc:
        build(name, cfg, out)
    msg = str(exc.value)
    assert "\n" not in msg
    assert files_under(out) == []  # validation happens before any write
    return msg


def manifest_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------- Sun80

# RefSR test code (MASA-SR's dataloader/dataset.py) globs Sun_Hays_SR_groundtruth/*.jpg and
# Sun_Hays_SR_scenematches/<HR file name>/*.jpg and fixes no file names beyond that (the set's own
# names could not be checked: its project page is gone), so these names are placeholders.
SUN_IMAGES = ("scene_001.jpg", "scene_002.jpg", "scene_003.jpg")


def make_sun80(root: Path, n_matches: int = 4) -> Path:
    """Three HR crops (JPEG, one not a multiple of 4) and ``n_matches`` scene matches each
    (other crops of the same photo, and one of another photo)."""
    for i, hr_name in enumerate(SUN_IMAGES):
        size = (41, 47) if i == 0 else (40, 48)
        save(root / "Sun_Hays_SR_groundtruth" / hr_name, crop(PHOTOS[i], 100, 100, *size), quality=95)
        for k in range(n_matches):
            src = PHOTOS[i] if k < n_matches - 1 else PHOTOS[i + 1]
            save(root / "Sun_Hays_SR_scenematches" / hr_name / f"match_{k:02d}.jpg",
                 crop(src, 60 + 20 * k, 80 + 10 * k, 36 + 4 * k, 44), quality=90)
    return root


@pytest.fixture
def sun80(tmp_path: Path) -> Path:
    return make_sun80(tmp_path / "Sun80")


def sun_cfg(root: Path, **kw) -> dict:
    return {"kind": "sun80", "test_dir": str(root), "images": 3, "references": 4, **kw}


def test_sun80_random_keeps_one_match_per_image_at_l1(tmp_path: Path, sun80: Path):
    out = tmp_path / "out"
    ds = build_to("sun", sun_cfg(sun80), out)
    assert [g.name for g in ds.groups] == [Path(n).stem for n in SUN_IMAGES]
    for g in ds.groups:
        hr_src = sun80 / "Sun_Hays_SR_groundtruth" / f"{g.name}.jpg"
        np.testing.assert_array_equal(read_image(g.hr), modcrop(read_image(hr_src), 4))
        assert len(g.refs) == 1 and list(g.levels.values()) == ["L1"]
        (ref_id, ref), = g.refs.items()
        src = sun80 / "Sun_Hays_SR_scenematches" / f"{g.name}.jpg" / f"{ref_id}.jpg"
        np.testing.assert_array_equal(read_image(ref), read_image(src))  # same pixels, size unchanged
    assert read_image(ds.groups[0].hr).shape == (40, 44, 3)  # 41x47 mod-cropped
    assert ds.has_levels
    rows = manifest_rows(out / "manifest.csv")
    assert [r["role"] for r in rows] == ["hr", "ref"] * 3 and {r["level"] for r in rows} == {"", "L1"}


def test_sun80_random_choice_is_reproducible_and_independent_of_groups(tmp_path: Path, sun80: Path):
    def chosen(seed, groups=None, out="o"):
        ds = build("sun", sun_cfg(sun80, seed=seed, groups=groups), tmp_path / f"{out}{seed}{groups}")
        return {g.name: next(iter(g.refs)) for g in ds.groups}

    first = chosen(0)
    assert chosen(0, out="again") == first
    assert chosen(0, groups=2) == dict(list(first.items())[:2])
    # the choice moves with the seed, and every candidate can be drawn
    by_seed = [chosen(s) for s in range(1, 9)]
    assert any(c != first for c in by_seed)
    drawn = {c[Path(SUN_IMAGES[0]).stem] for c in [first, *by_seed]}
    assert len(drawn) > 1 and drawn <= {f"match_{k:02d}" for k in range(4)}
    # the drawn index is uniform over the candidates (the generator, not the first or last)
    matches = [Path(f"m{k}.jpg") for k in range(4)]
    counts = np.bincount([matches.index(choose_match(matches, s, "x.jpg")) for s in range(2000)], minlength=4)
    assert counts.min() > 400


def test_sun80_all_keeps_every_match_without_level(tmp_path: Path, sun80: Path):
    out = tmp_path / "out"
    ds = build_to("sun", sun_cfg(sun80, reference="all"), out)
    for g in ds.groups:
        assert sorted(g.refs) == [f"match_{k:02d}" for k in range(4)]
        assert set(g.levels.values()) == {""}
    assert not ds.has_levels  # the tiers stage orders them by similarity score
    back = read_manifest(out / "manifest.csv", "sun")
    assert {g.name: sorted(g.refs) for g in back.groups} == {g.name: sorted(g.refs) for g in ds.groups}


def test_sun80_more_matches_than_the_fewest_are_kept(tmp_path: Path, sun80: Path):
    ds = build("sun", sun_cfg(sun80, reference="all", references=3), tmp_path / "out")
    assert all(len(g.refs) == 4 for g in ds.groups)


def test_sun80_folder_with_too_few_matches_names_folder_and_count(tmp_path: Path, sun80: Path):
    folder = sun80 / "Sun_Hays_SR_scenematches" / SUN_IMAGES[1]
    for p in sorted(folder.iterdir())[1:]:
        p.unlink()
    msg = message("sun", sun_cfg(sun80), tmp_path / "out")
    assert msg == (f"{folder.parent}: 1 problem with the dataset's files: {SUN_IMAGES[1]} "
                   "(1 scene match, expected at least 4)")
    # the published default: 20 per image
    msg = message("sun", {**sun_cfg(sun80), "references": 20}, tmp_path / "out")
    assert f"{SUN_IMAGES[0]} (4 scene matches, expected at least 20)" in msg


def test_sun80_missing_match_folder_and_wrong_image_count(tmp_path: Path, sun80: Path):
    folder = sun80 / "Sun_Hays_SR_scenematches" / SUN_IMAGES[2]
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    msg = message("sun", sun_cfg(sun80), tmp_path / "out")
    assert msg.endswith(f"{SUN_IMAGES[2]} (missing folder: the scene matches of {SUN_IMAGES[2]})")
    hr_dir = sun80 / "Sun_Hays_SR_groundtruth"
    msg = message("sun", {"kind": "sun80", "test_dir": str(sun80)}, tmp_path / "out")
    assert msg == f"{hr_dir}: holds 3 HR images, expected 80 (from datasets.sun.images)"


def test_sun80_unreadable_and_too_small_images_named(tmp_path: Path, sun80: Path):
    truncate(sun80 / "Sun_Hays_SR_scenematches" / SUN_IMAGES[0] / "match_01.jpg")
    save(sun80 / "Sun_Hays_SR_groundtruth" / SUN_IMAGES[2], crop("rocket", 0, 0, 11, 40))
    msg = message("sun", sun_cfg(sun80, reference="all"), tmp_path / "out")
    assert msg.startswith(f"{sun80}: 2 problems with the dataset's files: ")
    assert f"Sun_Hays_SR_scenematches/{SUN_IMAGES[0]}/match_01.jpg (unreadable or truncated" in msg
    assert f"Sun_Hays_SR_groundtruth/{SUN_IMAGES[2]} (image is 40x11, smaller than the minimum 12x12)" in msg


def test_sun80_layout_errors_also_at_dag_build(tmp_path: Path, sun80: Path):
    def at_dag_build(dataset):
        with pytest.raises(RefsrError) as exc:
            check_datasets(validate({"datasets": {"sun": dataset}, "train_dataset": "sun",
                                     "eval_datasets": ["sun"]}))
        return str(exc.value)

    assert at_dag_build(sun_cfg(tmp_path / "nope")) == \
        f"{tmp_path}/nope: folder not found (from datasets.sun.test_dir)"
    (sun80 / "Sun_Hays_SR_scenematches").rename(sun80 / "matches")
    assert at_dag_build(sun_cfg(sun80)) == (
        f"{sun80}/Sun_Hays_SR_scenematches: folder not found: a Sun80 folder holds "
        "Sun_Hays_SR_groundtruth/ (the HR images) and Sun_Hays_SR_scenematches/ (their scene matches)")
    assert at_dag_build(sun_cfg(sun80, groups=4)) == \
        "datasets.sun.groups: 4 is more than the 3 images of the set"
    with pytest.raises(RefsrError, match=r"^config key datasets\.sun\.reference: 'best' is not one of"):
        validate({"datasets": {"sun": sun_cfg(sun80, reference="best")}, "train_dataset": "sun",
                  "eval_datasets": ["sun"]})


# --------------------------------------------------------------------------- Urban100, Manga109

HR_ONLY = {
    "urban100": ("img_001.png", "img_002.png", "img_003.png"),
    "manga109": ("AisazuNihaIrarenai.png", "AkkeraKanjinchou.png", "Akuhamu.png"),
}


def make_hr_only(root: Path, kind: str) -> Path:
    for i, name in enumerate(HR_ONLY[kind]):
        save(root / name, crop(PHOTOS[i], 30, 60, 41 + i, 50))  # 41x50 and 43x50: mod-cropped
    return root


@pytest.mark.parametrize("kind", sorted(HR_ONLY))
def test_hr_only_sets_have_no_references_and_degrade(tmp_path: Path, kind: str):
    src = make_hr_only(tmp_path / kind, kind)
    out = tmp_path / "out"
    ds = build_to(kind, {"kind": kind, "test_dir": str(src), "images": 3}, out)
    assert [g.name for g in ds.groups] == [Path(n).stem for n in HR_ONLY[kind]]
    assert all(g.refs == {} for g in ds.groups)
    rows = manifest_rows(out / "manifest.csv")
    assert [r["role"] for r in rows] == ["hr"] * 3  # no reference rows
    back = read_manifest(out / "manifest.csv", kind)
    assert [g.name for g in back.groups] == [g.name for g in ds.groups]
    assert all(g.refs == {} and g.levels == {} for g in back.groups)
    for g, name in zip(back.groups, HR_ONLY[kind], strict=True):
        np.testing.assert_array_equal(read_image(g.hr), modcrop(read_image(src / name), 4))
    # the degrade stage on groups without references
    assert write_lr(back, out / "lr", 4) == 3
    for g in back.groups:
        h, w = read_image(g.hr).shape[:2]
        assert read_image(lr_path(out / "lr", "test", g.name)).shape == (h // 4, w // 4, 3)
    first = build(kind, {"kind": kind, "test_dir": str(src), "images": 3, "groups": 1}, tmp_path / "one")
    assert [g.name for g in first.groups] == [Path(HR_ONLY[kind][0]).stem]


def test_tiers_stage_on_a_set_without_references(tmp_path: Path, vgg_weights):
    from refsr.core.config import defaults
    from refsr.inference.levels import level_references
    from refsr.similarity.tiers import read_tiers
    from refsr.stages.tiers import run_tiers

    src = make_hr_only(tmp_path / "urban", "urban100")
    ds = build_to("u", {"kind": "urban100", "test_dir": str(src), "images": 3}, tmp_path / "out")
    write_lr(ds, tmp_path / "out" / "lr", 4)
    outs = {"csv": tmp_path / "t.csv", "agreement_csv": tmp_path / "a.csv",
            "agreement_md": tmp_path / "a.md", "png": tmp_path / "t.png"}
    df = run_tiers(ds, tmp_path / "out" / "lr", outs, defaults("tiers"), 4, "matlab", None)
    assert len(df) == 0
    tiers = read_tiers(outs["csv"])
    assert len(tiers) == 0 and level_references(ds, tiers) == {g.name: {} for g in ds.groups}


@pytest.mark.parametrize("kind, published", [("urban100", 100), ("manga109", 109)])
def test_hr_only_count_is_checked(tmp_path: Path, kind: str, published: int):
    src = make_hr_only(tmp_path / kind, kind)
    msg = message(kind, {"kind": kind, "test_dir": str(src)}, tmp_path / "out")
    assert msg == f"{src}: holds 3 images, expected {published} (from datasets.{kind}.images)"
    # SelfExSR's download keeps the images in image_SRF_<n>/ sub-folders
    nested = tmp_path / "Urban100"
    save(nested / "image_SRF_4" / "img_001_SRF_4_HR.png", crop("astronaut", 0, 0))
    msg = message(kind, {"kind": kind, "test_dir": str(nested)}, tmp_path / "out")
    assert msg == (f"{nested}: holds 0 images, expected {published} (from datasets.{kind}.images); "
                   "it has sub-folders (image_SRF_4): test_dir must be the folder holding the HR "
                   "images themselves")
    save(nested / "image_SRF_4" / "img_001_SRF_4_LR.png", crop("astronaut", 0, 0, 12, 12))
    msg = message(kind, {"kind": kind, "test_dir": str(nested / "image_SRF_4")}, tmp_path / "out")
    assert msg == (f"{nested}/image_SRF_4: holds 2 images, expected {published} (from "
                   f"datasets.{kind}.images); it also holds 1 LR image (img_001_SRF_4_LR.png): "
                   "keep only the HR images")


def test_hr_only_bad_images_and_missing_folder(tmp_path: Path):
    src = make_hr_only(tmp_path / "urban", "urban100")
    truncate(src / "img_002.png")
    (src / "img_003.png").write_bytes(b"")
    msg = message("u", {"kind": "urban100", "test_dir": str(src), "images": 3}, tmp_path / "out")
    assert msg.startswith(f"{src}: 2 files missing or unreadable: img_002.png (unreadable or truncated")
    assert "img_003.png (empty)" in msg
    save(src / "img_002.png", crop("coffee", 0, 0, 12, 9))
    save(src / "img_003.png", crop("coffee", 0, 0))
    msg = message("u", {"kind": "urban100", "test_dir": str(src), "images": 3}, tmp_path / "out")
    assert msg.endswith("img_002.png (image is 9x12, smaller than the minimum 12x12)")
    msg = message("u", {"kind": "urban100", "test_dir": str(tmp_path / "nope")}, tmp_path / "out")
    assert msg == f"{tmp_path}/nope: folder not found (from datasets.u.test_dir)"


# --------------------------------------------------------------------------- WR-SR


def make_wrsr(root: Path, n: int = 3) -> Path:
    """C2-Matching's layout: input/NNN.png with ref/NNN_ref.png (another view of the scene)."""
    for i in range(1, n + 1):
        save(root / "input" / f"{i:03d}.png", crop(PHOTOS[i - 1], 120, 140, 40 + (i == 1), 48))
        save(root / "ref" / f"{i:03d}_ref.png", crop(PHOTOS[i - 1], 100, 110, 52, 60))
    return root


@pytest.fixture
def wrsr(tmp_path: Path) -> Path:
    return make_wrsr(tmp_path / "WR-SR")


def test_wrsr_pairs_one_reference_at_l1(tmp_path: Path, wrsr: Path):
    out = tmp_path / "out"
    ds = build_to("wr", {"kind": "wrsr", "test_dir": str(wrsr), "groups": 3}, out)
    assert [g.name for g in ds.groups] == ["001", "002", "003"]
    for g in ds.groups:
        assert g.refs == {f"{g.name}_ref": out / "images" / "test" / g.name / "refs" / f"{g.name}_ref.png"}
        assert g.levels == {f"{g.name}_ref": "L1"}
        np.testing.assert_array_equal(read_image(g.hr), modcrop(read_image(wrsr / "input" / f"{g.name}.png"), 4))
        np.testing.assert_array_equal(read_image(g.refs[f"{g.name}_ref"]),
                                      read_image(wrsr / "ref" / f"{g.name}_ref.png"))
    assert read_image(ds.groups[0].hr).shape == (40, 48, 3)  # 41x48 mod-cropped
    assert ds.groups[1].hr.read_bytes() == (wrsr / "input" / "002.png").read_bytes()  # plain PNG copied
    assert len(manifest_rows(out / "manifest.csv")) == 6


def test_wrsr_missing_and_bad_files(tmp_path: Path, wrsr: Path):
    (wrsr / "ref" / "002_ref.png").unlink()
    truncate(wrsr / "input" / "003.png")
    msg = message("wr", {"kind": "wrsr", "test_dir": str(wrsr), "groups": 3}, tmp_path / "out")
    assert msg.startswith(f"{wrsr}: 2 files missing or unreadable: ")
    assert "ref/002_ref.png (missing)" in msg and "input/003.png (unreadable or truncated" in msg
    # the published 80 pairs by default
    make_wrsr(wrsr)
    msg = message("wr", {"kind": "wrsr", "test_dir": str(wrsr)}, tmp_path / "out")
    assert msg.startswith(f"{wrsr}: 154 files missing or unreadable: input/004.png (missing)")


def test_wrsr_layout_errors(tmp_path: Path, wrsr: Path):
    empty = tmp_path / "empty"
    (empty / "input").mkdir(parents=True)
    (empty / "ref").mkdir()
    msg = message("wr", {"kind": "wrsr", "test_dir": str(empty)}, tmp_path / "out")
    assert msg == (f"{empty}: no WR-SR files found: expected input/001.png .. input/080.png and "
                   "ref/001_ref.png .. ref/080_ref.png")
    (wrsr / "ref").rename(wrsr / "refs")
    with pytest.raises(RefsrError) as exc:  # at DAG build too
        check_datasets(validate({"datasets": {"wr": {"kind": "wrsr", "test_dir": str(wrsr)}},
                                 "train_dataset": "wr", "eval_datasets": ["wr"]}))
    assert str(exc.value) == (f"{wrsr}/ref: folder not found: a WR-SR folder holds input/ (001.png ..) "
                              "and ref/ (001_ref.png ..)")
    with pytest.raises(RefsrError, match=r"^config key datasets\.wr\.groups: 81 is greater than the maximum of 80"):
        build("wr", {"kind": "wrsr", "test_dir": str(wrsr), "groups": 81}, tmp_path / "out")


def test_dataset_errors_are_dataset_errors_listing_every_problem(tmp_path: Path, sun80: Path):
    for folder in (sun80 / "Sun_Hays_SR_scenematches").iterdir():
        for p in sorted(folder.iterdir())[2:]:
            p.unlink()
    with pytest.raises(DatasetError) as exc:
        build("sun", sun_cfg(sun80), tmp_path / "out")
    assert len(exc.value.problems) == 3

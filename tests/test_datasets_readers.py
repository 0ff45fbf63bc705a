"""The cufed5 and folder dataset builders on tiny fixtures built in tmp_path."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refsr.core.atomic import atomic_dir
from refsr.core.errors import RefsrError
from refsr.core.imageio import read_image
from refsr.data import build
from refsr.data.common import DatasetError, list_images
from refsr.data.cufed5 import build_cufed5
from refsr.data.folder import build_folder
from refsr.data.layout import LEVELS, read_manifest, write_manifest
from refsr.data.resize import modcrop

RNG = np.random.default_rng(0)


def rgb(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def save(path: Path, arr: np.ndarray, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, fmt)
    return path


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


# --------------------------------------------------------------------------- CUFED5 fixtures


def make_cufed5(root: Path, n_groups: int = 3) -> Path:
    """A CUFED5-layout folder: 48x40 RGB images, with a few odd ones to exercise conversions."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n_groups):
        for k in range(6):
            save(root / f"{i:03d}_{k}.png", rgb(40, 48))
    # group 000: HR whose size is not a multiple of 4 (-> mod-crop), a smaller reference
    save(root / "000_0.png", rgb(41, 47))
    save(root / "000_4.png", rgb(30, 36))
    # group 001: 16-bit grayscale HR, RGBA reference, palette reference
    save(root / "001_0.png", (RNG.integers(0, 65536, (40, 48))).astype(np.uint16))
    save(root / "001_2.png", RNG.integers(0, 256, (40, 48, 4), dtype=np.uint8))
    Image.fromarray(rgb(40, 48)).convert("P").save(root / "001_3.png")
    # group 002: 8-bit grayscale reference
    save(root / "002_5.png", RNG.integers(0, 256, (40, 48), dtype=np.uint8))
    return root


def make_train(root: Path, names=("000000", "000001", "000002", "000003")) -> Path:
    for n in names:
        save(root / "input" / f"{n}.png", rgb(16, 16))
        save(root / "ref" / f"{n}.png", rgb(16, 16))
    return root


@pytest.fixture
def cufed5(tmp_path: Path) -> Path:
    return make_cufed5(tmp_path / "CUFED5")


def test_cufed5_build_and_manifest_round_trip(tmp_path: Path, cufed5: Path):
    out = tmp_path / "out"
    out.mkdir()
    ds = build_cufed5("cufed5", {"kind": "cufed5", "test_dir": str(cufed5), "groups": 3}, out, 4)
    assert ds.root == out and ds.name == "cufed5"
    assert [g.name for g in ds.groups] == ["000", "001", "002"]
    assert ds.has_levels and ds.train == []
    for g in ds.groups:
        assert g.hr == out / "images" / "test" / g.name / "HR.png"
        assert list(g.refs) == list(LEVELS) and all(g.levels[r] == r for r in LEVELS)
        hr = read_image(g.hr)
        assert hr.shape[0] % 4 == 0 and hr.shape[1] % 4 == 0
        src_hr = read_image(cufed5 / f"{g.name}_0.png")
        np.testing.assert_array_equal(hr, modcrop(src_hr, 4))
        for k, level in enumerate(LEVELS, 1):
            ref_path = g.refs[level]
            assert ref_path == out / "images" / "test" / g.name / f"{level}.png"
            # normalised: 8-bit RGB PNG, same pixels as read_image gives, size unchanged
            with Image.open(ref_path) as im:
                assert (im.format, im.mode) == ("PNG", "RGB")
            np.testing.assert_array_equal(read_image(ref_path), read_image(cufed5 / f"{g.name}_{k}.png"))
    assert read_image(ds.group("000").hr).shape == (40, 44, 3)  # 41x47 mod-cropped
    assert read_image(ds.group("000").refs["L4"]).shape == (30, 36, 3)  # references keep their size
    # an 8-bit RGB PNG needing no crop is copied byte for byte
    assert ds.group("002").hr.read_bytes() == (cufed5 / "002_0.png").read_bytes()
    # every written file is under out/images
    assert all(p.is_relative_to(out / "images") for p in files_under(out))

    write_manifest(ds, out / "manifest.csv")
    with open(out / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * 6 and all(not os.path.isabs(r["path"]) for r in rows)
    back = read_manifest(out / "manifest.csv", "cufed5")
    assert [g.name for g in back.groups] == [g.name for g in ds.groups]
    for a, b in zip(ds.groups, back.groups, strict=True):
        assert a.hr.resolve() == b.hr.resolve()
        assert {k: v.resolve() for k, v in a.refs.items()} == {k: v.resolve() for k, v in b.refs.items()}
        assert a.levels == b.levels


def test_cufed5_conversions(tmp_path: Path, cufed5: Path):
    ds = build_cufed5("c", {"test_dir": cufed5, "groups": 3}, tmp_path / "out", 4)
    g = ds.group("001")
    hr = read_image(g.hr)  # 16-bit gray -> 3 equal 8-bit channels
    assert np.array_equal(hr[..., 0], hr[..., 1]) and np.array_equal(hr[..., 1], hr[..., 2])
    src16 = np.asarray(Image.open(cufed5 / "001_0.png"), dtype=np.float64)
    np.testing.assert_array_equal(hr[..., 0], np.clip(np.rint(src16 / 257.0), 0, 255))
    rgba = np.asarray(Image.open(cufed5 / "001_2.png"))
    np.testing.assert_array_equal(read_image(g.refs["L2"]), rgba[..., :3])  # alpha dropped
    gray = read_image(ds.group("002").refs["L5"])
    assert np.array_equal(gray[..., 0], gray[..., 2])


def test_cufed5_extra_files_ignored(tmp_path: Path, cufed5: Path):
    save(cufed5 / "003_0.png", rgb(40, 48))  # beyond groups=3
    (cufed5 / "README.txt").write_text("not an image")
    (cufed5 / "000_6.png").write_bytes(b"")  # not part of the layout
    ds = build_cufed5("c", {"test_dir": cufed5, "groups": 3}, tmp_path / "out", 4)
    assert len(ds.groups) == 3


def test_cufed5_reports_all_problems_at_once_and_writes_nothing(tmp_path: Path, cufed5: Path):
    (cufed5 / "001_3.png").unlink()
    (cufed5 / "002_0.png").unlink()
    truncate(cufed5 / "000_5.png")
    (cufed5 / "002_4.png").write_bytes(b"")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DatasetError) as exc:
        build_cufed5("c", {"test_dir": cufed5, "groups": 3}, out, 4)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"{cufed5}: 4 files missing or unreadable: ")
    assert "000_5.png (unreadable or truncated" in msg
    assert "001_3.png (missing)" in msg and "002_0.png (missing)" in msg
    assert "002_4.png (empty)" in msg
    assert len(exc.value.problems) == 4
    assert files_under(out) == []  # validation happens before any write


def test_cufed5_truncated_png_named(tmp_path: Path, cufed5: Path):
    truncate(cufed5 / "001_0.png", 0.6)
    with pytest.raises(RefsrError, match=r"1 file missing or unreadable: 001_0\.png \(unreadable or truncated"):
        build_cufed5("c", {"test_dir": cufed5, "groups": 3}, tmp_path / "out", 4)


def test_cufed5_default_expects_126_groups(tmp_path: Path, cufed5: Path):
    with pytest.raises(DatasetError) as exc:
        build_cufed5("c", {"test_dir": cufed5}, tmp_path / "out", 4)
    assert f"{123 * 6} files missing or unreadable: 003_0.png (missing)" in str(exc.value)
    assert "... and" in str(exc.value)


def test_cufed5_too_small_image(tmp_path: Path, cufed5: Path):
    save(cufed5 / "002_2.png", rgb(11, 40))  # under one 3x3 relu3_1 patch at x4 (12 px)
    with pytest.raises(RefsrError) as exc:
        build_cufed5("c", {"test_dir": cufed5, "groups": 3}, tmp_path / "out", 4)
    assert "002_2.png (image is 40x11, smaller than the minimum 12x12)" in str(exc.value)
    save(cufed5 / "002_2.png", rgb(12, 12))  # exactly one patch is fine
    build_cufed5("c", {"test_dir": cufed5, "groups": 3}, tmp_path / "out2", 4)


def test_cufed5_config_errors(tmp_path: Path, cufed5: Path):
    with pytest.raises(RefsrError, match=r"^datasets\.c\.test_dir: required"):
        build_cufed5("c", {"kind": "cufed5"}, tmp_path / "o", 4)
    with pytest.raises(RefsrError, match="folder not found"):
        build_cufed5("c", {"test_dir": tmp_path / "nope"}, tmp_path / "o", 4)
    with pytest.raises(RefsrError, match="not a folder"):
        build_cufed5("c", {"test_dir": cufed5 / "000_0.png"}, tmp_path / "o", 4)
    for bad in (0, -1, "3", True, 2.5):
        with pytest.raises(RefsrError, match=r"datasets\.c\.groups: must be a positive integer"):
            build_cufed5("c", {"test_dir": cufed5, "groups": bad}, tmp_path / "o", 4)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RefsrError, match="no CUFED5 files found: expected 000_0.png .. 125_5.png"):
        build_cufed5("c", {"test_dir": empty}, tmp_path / "o", 4)


def test_cufed5_training_pairs_read_in_place(tmp_path: Path, cufed5: Path):
    train = make_train(tmp_path / "CUFED")
    save(train / "ref" / "999999.png", rgb(16, 16))  # a reference without input: ignored
    out = tmp_path / "out"
    cfg = {"test_dir": str(cufed5), "train_dir": str(train), "groups": 2}
    ds = build_cufed5("c", cfg, out, 4)
    assert [t.name for t in ds.train] == ["000000", "000001", "000002", "000003"]
    for t in ds.train:
        assert t.input == (train / "input" / f"{t.name}.png").resolve()
        assert t.ref == (train / "ref" / f"{t.name}.png").resolve()
    assert not (out / "images" / "train").exists()  # not copied
    write_manifest(ds, out / "manifest.csv")
    back = read_manifest(out / "manifest.csv")
    assert [(t.name, t.input, t.ref) for t in back.train] == [(t.name, t.input, t.ref) for t in ds.train]
    ds2 = build_cufed5("c", {**cfg, "max_train_pairs": 2}, tmp_path / "out2", 4)
    assert [t.name for t in ds2.train] == ["000000", "000001"]


def test_cufed5_training_problems_reported_with_test_problems(tmp_path: Path, cufed5: Path):
    train = make_train(tmp_path / "CUFED")
    (train / "ref" / "000001.png").unlink()
    (train / "ref" / "000003.png").unlink()
    (train / "input" / "000002.png").write_bytes(b"")
    (cufed5 / "001_1.png").unlink()
    out = tmp_path / "out"
    with pytest.raises(DatasetError) as exc:
        build_cufed5("c", {"test_dir": cufed5, "train_dir": train, "groups": 3}, out, 4)
    msg = str(exc.value)
    assert msg.startswith(f"{tmp_path}: 4 files missing or unreadable")
    assert "CUFED5/001_1.png (missing)" in msg
    assert "CUFED/ref/000001.png (missing: no reference for input/000001.png)" in msg
    assert "CUFED/ref/000003.png (missing" in msg
    assert "CUFED/input/000002.png (empty)" in msg
    assert files_under(out) == []


def test_cufed5_training_folder_layout_errors(tmp_path: Path, cufed5: Path):
    train = tmp_path / "CUFED"
    (train / "input").mkdir(parents=True)
    (train / "ref").mkdir()
    with pytest.raises(RefsrError, match=r"input \(no images"):
        build_cufed5("c", {"test_dir": cufed5, "train_dir": train, "groups": 1}, tmp_path / "o", 4)
    (train / "ref").rmdir()
    with pytest.raises(RefsrError, match=r"ref \(missing folder"):
        build_cufed5("c", {"test_dir": cufed5, "train_dir": train, "groups": 1}, tmp_path / "o", 4)


def test_cufed5_inside_atomic_dir(tmp_path: Path, cufed5: Path):
    """The caller builds into atomic_dir: the dataset folder appears only on success."""
    dst = tmp_path / "results" / "data" / "cufed5"
    cfg = {"kind": "cufed5", "test_dir": cufed5, "groups": 3}
    truncate(cufed5 / "002_3.png")
    with pytest.raises(RefsrError, match="002_3.png"):
        with atomic_dir(dst) as tmp:
            ds = build("cufed5", cfg, tmp, 4)
            write_manifest(ds, tmp / "manifest.csv")
    assert not dst.exists() and list(dst.parent.iterdir()) == []  # no temporary left behind

    save(cufed5 / "002_3.png", rgb(40, 48))
    with atomic_dir(dst) as tmp:
        ds = build("cufed5", cfg, tmp, 4)
        write_manifest(ds, tmp / "manifest.csv")
    assert [p.name for p in dst.parent.iterdir()] == ["cufed5"]
    back = read_manifest(dst / "manifest.csv")
    assert len(back.groups) == 3
    assert all(p.is_file() for g in back.groups for p in [g.hr, *g.refs.values()])


# --------------------------------------------------------------------------- folder builder


@pytest.fixture
def user_data(tmp_path: Path) -> dict[str, Path]:
    """hr/ with three images (png, jpg, upper-case PNG) and refs/{stem}/ with candidates."""
    hr = tmp_path / "hr"
    save(hr / "a.png", rgb(41, 50))
    save(hr / "b.jpg", rgb(40, 48), "JPEG")
    save(hr / "c.PNG", RNG.integers(0, 256, (36, 44, 4), dtype=np.uint8))
    (hr / "notes.txt").write_text("ignored")
    refs = tmp_path / "refs"
    save(refs / "a" / "x.png", rgb(30, 30))
    save(refs / "a" / "y.jpg", rgb(50, 60), "JPEG")
    save(refs / "b" / "z.bmp", rgb(20, 24))
    save(refs / "c" / "w.webp", rgb(24, 24), "WEBP")
    save(refs / "c" / "v.tiff", rgb(32, 24), "TIFF")
    (refs / "unrelated").mkdir()
    return {"root": tmp_path, "hr": hr, "refs": refs}


def check_folder_dataset(ds, out: Path, expected: dict[str, dict[str, Path]], hr_dir: Path) -> None:
    assert [g.name for g in ds.groups] == list(expected)
    assert not ds.has_levels
    for g in ds.groups:
        assert g.hr == out / "images" / "test" / g.name / "HR.png"
        src = next(p for p in list_images(hr_dir) if p.stem == g.name)
        np.testing.assert_array_equal(read_image(g.hr), modcrop(read_image(src), 4))
        assert set(g.refs) == set(expected[g.name])
        assert all(g.levels[r] == "" for r in g.refs)
        for ref_id, p in g.refs.items():
            assert p == out / "images" / "test" / g.name / "refs" / f"{ref_id}.png"
            np.testing.assert_array_equal(read_image(p), read_image(expected[g.name][ref_id]))
    write_manifest(ds, out / "manifest.csv")
    back = read_manifest(out / "manifest.csv")
    assert {g.name: dict(g.levels) for g in back.groups} == {g.name: dict(g.levels) for g in ds.groups}


def test_folder_with_refs_dir(user_data):
    d = user_data
    out = d["root"] / "out"
    ds = build_folder("mine", {"kind": "folder", "hr_dir": str(d["hr"]), "refs_dir": str(d["refs"])}, out, 4)
    r = d["refs"]
    check_folder_dataset(ds, out, {
        "a": {"x": r / "a/x.png", "y": r / "a/y.jpg"},
        "b": {"z": r / "b/z.bmp"},
        "c": {"w": r / "c/w.webp", "v": r / "c/v.tiff"},
    }, d["hr"])
    assert read_image(ds.group("a").hr).shape == (40, 48, 3)
    assert ds.train == []


def test_folder_with_pairs_csv(user_data):
    d = user_data
    root = d["root"]
    rows = [
        ("hr", "ref", "note"),
        ("hr/a.png", "refs/a/x.png", "relative to the CSV"),
        ("a.png", str(d["refs"] / "a" / "y.jpg"), "bare HR name, absolute ref"),
        ("hr/a.png", "refs/a/x.png", "duplicate row: ignored"),
        ("", "", ""),
        ("b.jpg", "refs/c/w.webp", "the same reference for two HR images"),
        ("c.PNG", "refs/c/w.webp", ""),
    ]
    csv_path = root / "pairs.csv"
    with open(csv_path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    out = root / "out"
    ds = build_folder("mine", {"hr_dir": d["hr"], "pairs_csv": csv_path, "groups": 3}, out, 4)
    r = d["refs"]
    check_folder_dataset(ds, out, {
        "a": {"x": r / "a/x.png", "y": r / "a/y.jpg"},
        "b": {"w": r / "c/w.webp"},
        "c": {"w": r / "c/w.webp"},
    }, d["hr"])
    assert list(ds.group("a").refs) == ["x", "y"]  # CSV order


def test_folder_groups_and_training(user_data):
    d = user_data
    train = make_train(d["root"] / "train", names=("p1", "p2", "p3"))
    cfg = {"hr_dir": d["hr"], "refs_dir": d["refs"], "train_dir": train, "groups": 2, "max_train_pairs": 2}
    ds = build_folder("mine", cfg, d["root"] / "out", 4)
    assert [g.name for g in ds.groups] == ["a", "b"]
    assert [t.name for t in ds.train] == ["p1", "p2"] and ds.train[0].input.is_absolute()


def test_folder_reports_all_problems_at_once(user_data):
    d = user_data
    (d["refs"] / "b" / "z.bmp").unlink()  # b: empty sub-folder -> no reference
    truncate(d["refs"] / "a" / "y.jpg")  # unreadable reference
    save(d["hr"] / "e.png", rgb(40, 40))  # no sub-folder at all
    save(d["refs"] / "c" / "tiny.png", rgb(8, 40))  # too small
    save(d["hr"] / "a.jpg", rgb(40, 40), "JPEG")  # same stem as a.png
    out = d["root"] / "out"
    with pytest.raises(DatasetError) as exc:
        build_folder("mine", {"hr_dir": d["hr"], "refs_dir": d["refs"]}, out, 4)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"{d['root']}: 5 problems with the dataset's files: ")
    assert "hr/a.png (same name as a.jpg" in msg
    assert "hr/b.jpg (no reference: expected a folder refs/b/ with at least one image)" in msg
    assert "hr/e.png (no reference" in msg
    assert "refs/a/y.jpg (unreadable or truncated image" in msg
    assert "refs/c/tiny.png (image is 40x8, smaller than the minimum 12x12)" in msg
    assert files_under(out) == []


def test_folder_csv_problems(user_data):
    d = user_data
    root = d["root"]
    csv_path = root / "lists" / "pairs.csv"
    csv_path.parent.mkdir()
    save(root / "other" / "x.png", rgb(20, 20))
    save(root / "elsewhere.png", rgb(20, 20))
    rows = [
        ("HR", " Ref "),  # header matched case- and space-insensitively
        ("a.png", "../refs/a/x.png"),
        ("a.png", "../other/x.png"),  # another file with the same stem for the same HR
        ("b.jpg", "../refs/b/missing.png"),  # listed reference does not exist
        ("../elsewhere.png", "../refs/a/x.png"),  # an HR outside hr_dir
        ("../hr/gone.png", "../refs/a/x.png"),  # an HR that does not exist
        ("b.jpg", ""),  # empty cell
    ]
    with open(csv_path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    with pytest.raises(DatasetError) as exc:
        build_folder("mine", {"hr_dir": d["hr"], "pairs_csv": csv_path}, root / "out", 4)
    msg = str(exc.value)
    problems = dict(exc.value.problems)
    assert "reference name 'x' already used for a.png" in problems[str(root / "other/x.png")]
    assert problems[str(root / "refs/b/missing.png")] == "missing reference, listed in pairs.csv line 4"
    assert "not an image of" in problems[str(root / "elsewhere.png")]
    assert problems[str(root / "hr/gone.png")] == "missing HR image, listed in pairs.csv line 6"
    assert problems[str(csv_path)] == "line 7: empty hr or ref"
    assert "no reference: no row of pairs.csv lists this HR image" in problems[str(d["hr"] / "b.jpg")]
    assert "no reference" in problems[str(d["hr"] / "c.PNG")]
    assert "\n" not in msg and msg.startswith(f"{root}: 7 problems")


def test_folder_config_errors(user_data, tmp_path: Path):
    d = user_data
    with pytest.raises(RefsrError, match=r"^datasets\.m\.hr_dir: required"):
        build_folder("m", {"refs_dir": d["refs"]}, tmp_path / "o", 4)
    with pytest.raises(RefsrError, match="exactly one of refs_dir"):
        build_folder("m", {"hr_dir": d["hr"]}, tmp_path / "o", 4)
    with pytest.raises(RefsrError, match="exactly one of refs_dir"):
        build_folder("m", {"hr_dir": d["hr"], "refs_dir": d["refs"], "pairs_csv": "p.csv"}, tmp_path / "o", 4)
    with pytest.raises(RefsrError, match="file not found"):
        build_folder("m", {"hr_dir": d["hr"], "pairs_csv": tmp_path / "none.csv"}, tmp_path / "o", 4)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("image,reference\na.png,refs/a/x.png\n")
    with pytest.raises(RefsrError, match="expected a header with columns hr,ref; found image,reference"):
        build_folder("m", {"hr_dir": d["hr"], "pairs_csv": bad_csv}, tmp_path / "o", 4)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(RefsrError, match=r"no HR images \(.png, .jpg"):
        build_folder("m", {"hr_dir": empty, "refs_dir": d["refs"]}, tmp_path / "o", 4)


def test_build_dispatches_to_folder(user_data):
    d = user_data
    ds = build("mine", {"kind": "folder", "hr_dir": d["hr"], "refs_dir": d["refs"]}, d["root"] / "o", 4)
    assert len(ds.groups) == 3
    with pytest.raises(RefsrError, match="unknown dataset kind"):
        build("x", {"kind": "nope"}, d["root"] / "o", 4)

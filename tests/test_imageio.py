"""read_image: every bad input gives a one-line RefsrError naming the file; documented conversions."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refsr.core.errors import RefsrError
from refsr.core.imageio import check_min_size, read_image, to_float, to_uint8, write_image

RNG = np.random.default_rng(0)


def rgb(h: int = 20, w: int = 24) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def raw_png(path: Path, width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> Path:
    """A PNG written by hand (for formats Pillow does not write, e.g. 16-bit RGB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))
    return path


def assert_one_line_error(path: Path, match: str) -> RefsrError:
    with pytest.raises(RefsrError, match=match) as exc:
        read_image(path)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: ")
    assert exc.value.where == str(path)
    return exc.value


# --------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path):
    assert_one_line_error(tmp_path / "nope.png", "file not found")


def test_empty_file(tmp_path: Path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    assert_one_line_error(p, "empty file")


def test_directory(tmp_path: Path):
    d = tmp_path / "dir.png"
    d.mkdir()
    assert_one_line_error(d, "is a directory")


def test_text_file(tmp_path: Path):
    p = tmp_path / "notes.png"
    p.write_text("this is not an image\nsecond line\n")
    assert_one_line_error(p, "not a recognised image format")


@pytest.mark.parametrize("fmt,suffix", [("PNG", ".png"), ("JPEG", ".jpg"), ("BMP", ".bmp"), ("TIFF", ".tif")])
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated(tmp_path: Path, fmt: str, suffix: str, keep: float):
    p = tmp_path / f"img{suffix}"
    Image.fromarray(rgb(40, 48)).save(p, fmt)
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * keep)])
    assert_one_line_error(p, "unreadable or truncated image")


def test_jpeg_cut_inside_header(tmp_path: Path):
    p = tmp_path / "img.jpg"
    Image.fromarray(rgb(40, 48)).save(p, "JPEG")
    p.write_bytes(p.read_bytes()[:40])
    assert_one_line_error(p, "(not a recognised image format|unreadable or truncated)")


def test_corrupted_png_data(tmp_path: Path):
    p = tmp_path / "img.png"
    Image.fromarray(rgb(40, 48)).save(p)
    data = bytearray(p.read_bytes())
    data[60:80] = b"\xff" * 20  # inside the compressed image data
    p.write_bytes(bytes(data))
    assert_one_line_error(p, "unreadable or truncated image")


def test_decompression_bomb_is_a_refsr_error(tmp_path: Path):
    """A header claiming 40000x40000 pixels: Pillow raises DecompressionBombError, not an OSError."""
    p = raw_png(tmp_path / "bomb.png", 40000, 40000, 8, 2, b"")
    assert_one_line_error(p, "image too large")


def test_str_path_accepted(tmp_path: Path):
    p = tmp_path / "a.png"
    Image.fromarray(rgb()).save(p)
    assert read_image(str(p)).shape == (20, 24, 3)


# --------------------------------------------------------------------------- conversions


def test_rgb_unchanged(tmp_path: Path):
    a = rgb()
    Image.fromarray(a).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (20, 24, 3)
    np.testing.assert_array_equal(out, a)


def test_grayscale_to_three_equal_channels(tmp_path: Path):
    g = RNG.integers(0, 256, (20, 24), dtype=np.uint8)
    Image.fromarray(g).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (20, 24, 3) and out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], g)


def test_bilevel_to_0_and_255(tmp_path: Path):
    b = RNG.integers(0, 2, (20, 24)).astype(bool)
    Image.fromarray(b).save(tmp_path / "b.png")
    out = read_image(tmp_path / "b.png")
    np.testing.assert_array_equal(out[..., 1], np.where(b, 255, 0))


def test_rgba_alpha_dropped(tmp_path: Path):
    a = RNG.integers(0, 256, (20, 24, 4), dtype=np.uint8)
    a[:5, :, 3] = 0  # fully transparent rows keep their stored colour
    Image.fromarray(a).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), a[..., :3])


def test_gray_alpha_dropped(tmp_path: Path):
    la = RNG.integers(0, 256, (20, 24, 2), dtype=np.uint8)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    out = read_image(tmp_path / "la.png")
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], la[..., 0])


def test_16bit_grayscale_rescaled(tmp_path: Path):
    v = np.array([[0, 1, 128, 129, 257, 385, 386, 32896, 65278, 65535]], dtype=np.uint16)
    v = np.repeat(v, 3, axis=0)
    im = Image.fromarray(v)
    assert im.mode == "I;16"
    im.save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as reread:
        assert reread.mode == "I;16"
    out = read_image(tmp_path / "g16.png")
    # round(v / 257): 128/257 = 0.498 -> 0, 129/257 = 0.502 -> 1, 385 -> 1.498 -> 1, 386 -> 2
    expected = np.array([0, 0, 0, 1, 1, 1, 2, 128, 254, 255], dtype=np.uint8)
    assert out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[0, :, c], expected)


def test_dark_16bit_grayscale_not_mistaken_for_8bit(tmp_path: Path):
    v = np.full((4, 4), 200, dtype=np.uint16)  # a dark 16-bit image: 200/257 -> 1
    Image.fromarray(v).save(tmp_path / "dark.png")
    assert (read_image(tmp_path / "dark.png") == 1).all()


def test_32bit_integer_grayscale(tmp_path: Path):
    wide = np.array([[0, 100, 255, 256, 65535, 70000, -5]], dtype=np.int32)
    Image.fromarray(wide).save(tmp_path / "i.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "i.tif")[0, :, 0], [0, 0, 1, 1, 255, 255, 0])
    narrow = np.array([[0, 100, 200]], dtype=np.int32)  # values within 0..255: taken as 8-bit
    Image.fromarray(narrow).save(tmp_path / "n.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "n.tif")[0, :, 0], [0, 100, 200])


def test_float_grayscale(tmp_path: Path):
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)).save(tmp_path / "f.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "f.tif")[0, :, 0], [0, 128, 255])


def test_16bit_rgb_reduced_to_high_byte(tmp_path: Path):
    a = RNG.integers(0, 65536, (4, 5, 3)).astype(">u2")
    rows = b"".join(b"\x00" + a[i].tobytes() for i in range(a.shape[0]))
    p = raw_png(tmp_path / "c16.png", 5, 4, 16, 2, rows)
    np.testing.assert_array_equal(read_image(p), (a >> 8).astype(np.uint8))


def test_palette_to_rgb(tmp_path: Path):
    im = Image.fromarray(rgb()).convert("P")
    assert im.mode == "P"
    im.save(tmp_path / "p.png")
    expected = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), expected)


def test_palette_with_transparency_to_rgb(tmp_path: Path):
    im = Image.fromarray(rgb()).convert("P")
    im.save(tmp_path / "pt.png", transparency=0)
    out = read_image(tmp_path / "pt.png")
    assert out.shape == (20, 24, 3)
    np.testing.assert_array_equal(out, np.asarray(im.convert("RGB")))


def test_cmyk_jpeg_to_rgb(tmp_path: Path):
    im = Image.fromarray(rgb()).convert("CMYK")
    im.save(tmp_path / "c.jpg", quality=95)
    out = read_image(tmp_path / "c.jpg")
    assert out.shape == (20, 24, 3) and out.dtype == np.uint8


# --------------------------------------------------------------------------- writing and helpers


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_write_read_round_trip(tmp_path: Path, suffix: str):
    a = rgb()
    p = tmp_path / "sub" / f"out{suffix}"
    write_image(p, a)
    np.testing.assert_array_equal(read_image(p), a)
    assert [q.name for q in p.parent.iterdir()] == [p.name]  # no temporary left behind


def test_write_image_rejects_float_and_keeps_old_file(tmp_path: Path):
    p = tmp_path / "out.png"
    write_image(p, rgb())
    before = p.read_bytes()
    with pytest.raises(TypeError):
        write_image(p, np.zeros((4, 4, 3), np.float32))
    assert p.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def test_check_min_size():
    check_min_size(np.zeros((12, 12, 3), np.uint8), "x.png")  # MIN_SIDE = 12
    with pytest.raises(RefsrError, match=r"^x\.png: reference is 20x11, smaller than the minimum 12x12$"):
        check_min_size(np.zeros((11, 20, 3), np.uint8), "x.png", what="reference")


def test_float_conversions():
    a = np.arange(256, dtype=np.uint8).reshape(16, 16)
    f = to_float(a)
    assert f.dtype == np.float32 and f.min() == 0.0 and f.max() == 1.0
    np.testing.assert_array_equal(to_uint8(f), a)
    np.testing.assert_array_equal(to_uint8(np.array([-0.5, 0.5, 2.0])), [0, 128, 255])


def test_atomic_outputs_get_normal_permissions(tmp_path):
    import os

    from refsr.core.atomic import atomic_dir, write_text

    write_text(tmp_path / "a.txt", "x")
    with atomic_dir(tmp_path / "d") as d:
        (d / "f").write_text("y")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~mask

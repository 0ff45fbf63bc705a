"""Property-based bad input (issue 14): random bytes, truncated real PNG/JPEG files, random image
sizes and modes, random option values. Every run of the command either writes a valid output
or exits 1 with exactly one ``refsr: error:`` line on stderr: never a traceback, never a file
left behind. Example counts are kept moderate so the suite stays within its time."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from refsr.cli import main

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _photo_bytes(fmt: str) -> bytes:
    import skimage.data

    buf = io.BytesIO()
    Image.fromarray(skimage.data.coffee()[:96, :128]).save(buf, format=fmt)
    return buf.getvalue()


PNG = _photo_bytes("PNG")
JPEG = _photo_bytes("JPEG")


def outcome(capsys, rc: int, out: Path, folder: Path) -> str:
    """'ok' (a readable output image, nothing on stderr) or 'error' (one line, no output);
    fails the test for anything else. Leaves ``folder`` as it found it."""
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    leftovers = sorted(p.name for p in folder.iterdir() if p.name.startswith("."))
    assert not leftovers, leftovers
    if rc == 0:
        assert not err, err
        if out.suffix:
            with Image.open(out) as im:
                im.load()
            out.unlink()
        return "ok"
    assert rc == 1, (rc, err)
    assert len(err) == 1 and err[0].startswith("refsr: error: "), err
    assert "Traceback" not in captured.err
    assert not out.exists()
    return "error"


@pytest.fixture
def work(tmp_path) -> Path:
    (tmp_path / "out").mkdir()
    return tmp_path


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_are_refused_in_one_line(data, work, capsys):
    src = work / "in.png"
    src.write_bytes(data)
    out = work / "out" / "lr.png"
    assert outcome(capsys, main(["degrade", str(src), str(out)]), out, work / "out") == "error"


@FUZZ
@given(fmt=st.sampled_from(["png", "jpg"]), cut=st.floats(0.0, 0.999))
def test_truncated_real_files_never_give_an_image_of_garbage(fmt, cut, work, capsys):
    whole = PNG if fmt == "png" else JPEG
    src = work / f"in.{fmt}"
    src.write_bytes(whole[: int(len(whole) * cut)])
    out = work / "out" / "lr.png"
    assert outcome(capsys, main(["degrade", str(src), str(out)]), out, work / "out") == "error"


@FUZZ
@given(h=st.integers(1, 70), w=st.integers(1, 70),
       mode=st.sampled_from(["L", "LA", "RGB", "RGBA", "P", "I;16", "CMYK", "1"]),
       fmt=st.sampled_from(["png", "tif", "bmp"]))
def test_random_sizes_and_modes(h, w, mode, fmt, work, capsys):
    if fmt == "bmp" and mode in ("LA", "I;16", "CMYK"):
        fmt = "png" if mode != "CMYK" else "tif"  # formats Pillow cannot write these modes in
    rng = np.random.default_rng(h * 100 + w)
    im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)
    src = work / f"in.{fmt}"
    im.save(src)
    out = work / "out" / "lr.png"
    got = outcome(capsys, main(["degrade", str(src), str(out)]), out, work / "out")
    assert got == ("ok" if min(h, w) >= 12 else "error")


OPTION = st.one_of(st.integers(-5, 40).map(str), st.floats(allow_nan=True, allow_infinity=True).map(str),
                   st.sampled_from(["", "x", "1e3", "0x10", " 3", "-0"]))


@FUZZ
@given(tile=OPTION, pad=OPTION, max_mb=OPTION)
def test_random_sr_options(tile, pad, max_mb, work, capsys):
    import skimage.data

    lr = work / "lr.png"
    if not lr.exists():
        Image.fromarray(skimage.data.astronaut()[:16, :16]).save(lr)
    out = work / "out" / "sr.png"
    argv = ["sr", "--lr", str(lr), "--checkpoint", "bicubic", "--out", str(out),
            f"--tile={tile}", f"--pad={pad}", f"--max-mb={max_mb}"]
    outcome(capsys, main(argv), out, work / "out")


@FUZZ
@given(crop=OPTION, scale=OPTION)
def test_random_score_options(crop, scale, work, capsys):
    import skimage.data

    hr = work / "hr.png"
    if not hr.exists():
        Image.fromarray(skimage.data.astronaut()[:64, :64]).save(hr)
    rc = main(["score", str(hr), str(hr), f"--crop={crop}", f"--scale={scale}"])
    captured = capsys.readouterr()
    if rc == 0:  # stdout is strict JSON (stderr may carry notes such as a weight download)
        json.loads(captured.out, parse_constant=lambda name: pytest.fail(f"non-JSON {name}"))
    else:
        err = captured.err.strip().splitlines()
        assert rc == 1 and len(err) == 1 and err[0].startswith("refsr: error: "), err

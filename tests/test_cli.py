"""The refsr CLI contracts: degrade and score (sr is in test_infer, bench in test_bench)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from refsr.cli import main
from refsr.data.resize import degrade

REFSR = str(Path(sys.executable).parent / "refsr")


def test_degrade_cli_matches_library(tmp_path):
    import skimage.data

    hr = skimage.data.coffee()[:101, :143]
    Image.fromarray(hr).save(tmp_path / "hr.png")
    proc = subprocess.run([REFSR, "degrade", str(tmp_path / "hr.png"), str(tmp_path / "lr.png")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lr = np.asarray(Image.open(tmp_path / "lr.png"))
    assert lr.shape == (25, 35, 3)
    assert np.array_equal(lr, degrade(hr, 4)[1])


def test_degrade_bad_input_one_line(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    proc = subprocess.run([REFSR, "degrade", str(tmp_path / "empty.png"), str(tmp_path / "lr.png")],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "empty.png" in lines[0] and "empty" in lines[0]
    assert not (tmp_path / "lr.png").exists()


def test_score_prints_one_json_line(tmp_path, capsys):
    import skimage.data

    hr = skimage.data.astronaut()[:64, :64]
    noisy = np.clip(hr.astype(int) + np.random.RandomState(0).randint(-6, 7, hr.shape), 0, 255).astype(np.uint8)
    Image.fromarray(hr).save(tmp_path / "hr.png")
    Image.fromarray(noisy).save(tmp_path / "sr.png")
    assert main(["score", str(tmp_path / "sr.png"), str(tmp_path / "hr.png"), "--offline"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    scores = json.loads(out[0])
    assert 25 < scores["psnr"] < 45 and 0 < scores["ssim"] < 1
    assert "lpips" in scores


def test_score_size_mismatch(tmp_path, capsys):
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((48, 40, 3), np.uint8)).save(tmp_path / "b.png")
    assert main(["score", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--no-lpips"]) != 0
    err = capsys.readouterr().err
    assert "a.png" in err and "b.png" in err and "size mismatch" in err


def test_cli_defaults_are_the_schemas(monkeypatch):
    """degrade --scale/--resize, score --scale and bench swap --max-mb state no defaults of their
    own: the parser reads them from the config schema (refsr.core.config.defaults)."""
    import refsr.core.config as config
    from refsr.cli import build_parser

    real = config.defaults
    args = build_parser().parse_args(["degrade", "hr.png", "lr.png"])
    assert (args.scale, args.resize) == (real("scale"), real("resize"))
    assert build_parser().parse_args(["score", "sr.png", "hr.png"]).scale == real("scale")
    assert build_parser().parse_args(["bench", "swap"]).max_mb == real("matching.max_mb")

    changed = {"scale": 3, "resize": "pil", "matching.max_mb": 64}
    monkeypatch.setattr(config, "defaults", lambda section=None: changed.get(section, real(section)))
    args = build_parser().parse_args(["degrade", "hr.png", "lr.png"])
    assert (args.scale, args.resize) == (3, "pil")
    assert build_parser().parse_args(["score", "sr.png", "hr.png"]).scale == 3
    assert build_parser().parse_args(["bench", "swap"]).max_mb == 64

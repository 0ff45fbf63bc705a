"""The evaluation stage: CSV values against independent computations, missing cells, LPIPS."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import protocol, write_tiers_csv
from PIL import Image
from skimage.metrics import structural_similarity

from refsr.core.config import validate
from refsr.core.errors import RefsrError
from refsr.data import layout
from refsr.data.layout import EVAL_LEVELS, Dataset
from refsr.evaluation.lpips import LPIPSMetric
from refsr.evaluation.protocol import protocol_from_config
from refsr.evaluation.results import COLUMNS, evaluate_model, read_eval_csv
from refsr.stages.evaluate import run_evaluation

CONFIG = validate({"scale": 4, "resize": "matlab", "device": "cpu",
                   "evaluation": {"y_channel": True, "crop": 4, "lpips": False}})


def _y(img: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr Y for uint8 input, written out independently of refsr.metrics."""
    rgb = img.astype(np.float64)
    y = 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0
    return np.floor(y + 0.5)


def _psnr_by_hand(sr, hr, crop=4):
    a, b = _y(sr)[crop:-crop, crop:-crop], _y(hr)[crop:-crop, crop:-crop]
    return 10 * math.log10(255.0**2 / np.mean((a - b) ** 2))


def _ssim_by_skimage(sr, hr, crop=4):
    a, b = _y(sr)[crop:-crop, crop:-crop], _y(hr)[crop:-crop, crop:-crop]
    return structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)


def make_dataset(tmp_path, rng, names=("a", "b"), hr_shape=(50, 42), levels=EVAL_LEVELS,
                 skip=(), noise=12):
    """A tiny dataset (HR not a multiple of 4: it is mod-cropped) and SR outputs = noisy HR."""
    root = tmp_path / "data"
    sr_dir = tmp_path / "sr" / "model"
    groups, srs = [], {}
    for i, name in enumerate(names):
        hr = rng.randint(0, 256, size=(*hr_shape, 3)).astype(np.uint8)
        hr = np.clip(hr.astype(int) // 2 + 60 + 10 * i, 0, 255).astype(np.uint8)
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(hr).save(root / "images" / f"{name}.png")
        groups.append(layout.TestGroup(name, hr=root / "images" / f"{name}.png"))
        cropped = hr[: hr_shape[0] // 4 * 4, : hr_shape[1] // 4 * 4]
        for j, level in enumerate(levels):
            if (name, level) in skip:
                continue
            sr = np.clip(cropped.astype(int) + rng.randint(-noise, noise + 1, cropped.shape) * (j + 1) // 3,
                         0, 255).astype(np.uint8)
            (sr_dir / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(sr).save(sr_dir / name / f"{level}.png")
            srs[(name, level)] = (sr, cropped)
    return Dataset("tiny", root, groups=groups), sr_dir, srs


def full_tiers(tmp_path, ds):
    """A tiers CSV giving every group of ``ds`` a reference at each of L1..L5."""
    return write_tiers_csv(tmp_path / "tiers.csv", {g.name: list(layout.LEVELS) for g in ds.groups})


def test_values_match_independent_computation(tmp_path, rng):
    ds, sr_dir, srs = make_dataset(tmp_path, rng)
    df, missing = evaluate_model(ds, sr_dir, protocol())
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 2 * len(EVAL_LEVELS) and not missing
    for row in df.itertuples():
        sr, hr = srs[(row.image, row.level)]
        assert row.psnr == pytest.approx(_psnr_by_hand(sr, hr), abs=1e-9)
        assert row.ssim == pytest.approx(_ssim_by_skimage(sr, hr), abs=1e-6)
        assert math.isnan(row.lpips)


def test_hand_computed_psnr_on_constant_images(tmp_path):
    """HR grey 100, SR grey 110 everywhere: Y differs by round(16 + 110*219/255) - ... exactly."""
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    Image.fromarray(np.full((40, 40, 3), 100, np.uint8)).save(root / "images" / "g.png")
    sr_dir = tmp_path / "sr"
    for level in EVAL_LEVELS:
        (sr_dir / "g").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((40, 40, 3), 110, np.uint8)).save(sr_dir / "g" / f"{level}.png")
    ds = Dataset("c", root, groups=[layout.TestGroup("g", hr=root / "images" / "g.png")])
    df, _ = evaluate_model(ds, sr_dir, protocol())
    # Y = 16 + v * 219/255: 101.882 -> 102 and 110.471 -> 110; squared error 64 everywhere
    assert df["psnr"].to_numpy() == pytest.approx(10 * math.log10(255**2 / 64.0))
    # constant images: SSIM = (2 mu1 mu2 + C1) / (mu1^2 + mu2^2 + C1), variances 0
    c1 = (0.01 * 255) ** 2
    assert df["ssim"].to_numpy() == pytest.approx((2 * 102 * 110 + c1) / (102**2 + 110**2 + c1))


def test_missing_level_is_a_nan_row_and_counted(tmp_path, rng):
    ds, sr_dir, _ = make_dataset(tmp_path, rng, skip={("b", "L3")})
    out_csv, out_json = tmp_path / "eval" / "m.csv", tmp_path / "eval" / "m.json"
    df = run_evaluation(ds, sr_dir, "model", CONFIG, full_tiers(tmp_path, ds), out_csv, out_json)
    back = read_eval_csv(out_csv)
    assert len(back) == len(df) == 2 * len(EVAL_LEVELS)
    row = back[(back["image"] == "b") & (back["level"] == "L3")]
    assert row[["psnr", "ssim", "lpips"]].isna().all(axis=None)
    meta = json.loads(out_json.read_text())
    assert meta["missing"]["count"] == 1
    assert meta["missing"]["by_level"]["L3"] == 1 and meta["missing"]["by_level"]["L1"] == 0
    assert meta["missing"]["cells"] == [["b", "L3"]]
    assert meta["protocol_text"] == protocol_from_config(CONFIG).describe()
    assert meta["lpips"]["available"] is False and "disabled" in meta["lpips"]["reason"]


def test_size_mismatch_names_both_files(tmp_path, rng):
    ds, sr_dir, _ = make_dataset(tmp_path, rng, names=("a",))
    bad = sr_dir / "a" / "L2.png"
    Image.fromarray(np.zeros((40, 44, 3), np.uint8)).save(bad)
    with pytest.raises(RefsrError) as err:
        evaluate_model(ds, sr_dir, protocol())
    msg = str(err.value)
    assert str(bad) in msg and str(ds.groups[0].hr) in msg and "size mismatch" in msg
    assert "\n" not in msg


def test_missing_sr_folder_is_a_clear_error(tmp_path, rng):
    ds, _, _ = make_dataset(tmp_path, rng, names=("a",))
    with pytest.raises(RefsrError, match="inference stage"):
        evaluate_model(ds, tmp_path / "nope", protocol())


def test_unavailable_lpips_gives_nan_and_reason(tmp_path, rng):
    ds, sr_dir, _ = make_dataset(tmp_path, rng, names=("a",))
    metric = LPIPSMetric(weights_path=tmp_path / "no_alexnet.pth")
    cfg = {**CONFIG, "evaluation": {**CONFIG["evaluation"], "lpips": True}}
    df = run_evaluation(ds, sr_dir, "m", cfg, full_tiers(tmp_path, ds), tmp_path / "m.csv",
                        tmp_path / "m.json", metric)
    assert df["lpips"].isna().all()
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["lpips"]["enabled"] and not meta["lpips"]["available"]
    assert "not found" in meta["lpips"]["reason"]
    assert meta["nan"]["lpips"] == len(df) and meta["nan"]["psnr"] == 0


def test_lpips_column_filled_when_a_metric_is_available(tmp_path, rng):
    """Random-trunk LPIPS exercises the code path only (never a reported number)."""
    ds, sr_dir, srs = make_dataset(tmp_path, rng, names=("a",))
    _, hr = srs[("a", "L1")]
    Image.fromarray(hr).save(sr_dir / "a" / "HR.png")  # a perfect output at the HR level
    import torch
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), tmp_path / "random_alexnet.pth")
    metric = LPIPSMetric(weights_path=tmp_path / "random_alexnet.pth", allow_download=False)
    df, _ = evaluate_model(ds, sr_dir, protocol(), metric)
    assert df["lpips"].notna().all()
    perfect = df[df["level"] == "HR"].iloc[0]
    assert perfect["lpips"] == pytest.approx(0.0, abs=1e-6)
    assert math.isinf(perfect["psnr"]) and perfect["ssim"] == pytest.approx(1.0)
    assert (df[df["level"] != "HR"]["lpips"] > 0).all()


def test_protocol_from_config_options():
    p = protocol_from_config(validate({"scale": 4, "resize": "pil",
                                       "evaluation": {"y_channel": False, "crop": 0}}))
    assert (p.y_channel, p.crop, p.resize) == (False, 0, "pil")
    assert "RGB" in p.describe() and "no border crop" in p.describe() and "PIL" in p.describe()
    assert protocol_from_config(validate({})) == protocol()


def test_csv_roundtrip_keeps_inf_and_nan(tmp_path, rng):
    ds, sr_dir, srs = make_dataset(tmp_path, rng, names=("a",), skip={("a", "L5")})
    _, hr = srs[("a", "L1")]
    Image.fromarray(hr).save(sr_dir / "a" / "HR.png")
    run_evaluation(ds, sr_dir, "m", CONFIG, full_tiers(tmp_path, ds), tmp_path / "m.csv",
                   tmp_path / "m.json")
    back = read_eval_csv(tmp_path / "m.csv")
    assert math.isinf(back.loc[back["level"] == "HR", "psnr"].iloc[0])
    assert back.loc[back["level"] == "L5", "psnr"].isna().all()
    assert pd.api.types.is_float_dtype(back["lpips"])


def test_read_eval_csv_rejects_other_columns(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("image,level,psnr\na,L1,3\n")
    with pytest.raises(RefsrError, match="not an evaluation CSV"):
        read_eval_csv(p)

"""Evaluation protocol presets (issue 11), each checked against an implementation written here
from the formulas of the codebase that defines it (never by calling refsr's metrics twice), on
real photos; ST-LPIPS; the all-reference levels ALL and ALL_STITCHED."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from PIL import Image

from refsr.cli import main
from refsr.core.config import defaults, validate
from refsr.core.errors import RefsrError
from refsr.data.layout import EVAL_LEVELS
from refsr.data.layout import TestGroup as Group
from refsr.evaluation.protocol import PRESETS, protocol_from_config, resolve_protocol
from refsr.evaluation.stlpips import STLPIPSMetric, check_fully_loaded
from refsr.inference.levels import STITCH_SIDE, level_images, stitch_references


def _pairs():
    """(SR, HR) pairs of real photos: HR mod-cropped, SR = PIL bicubic down-up (a real SR-like error)."""
    import skimage.data

    out = []
    for photo in (skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()):
        hr = photo[:180, :228]
        small = Image.fromarray(hr).resize((hr.shape[1] // 4, hr.shape[0] // 4), Image.BICUBIC)
        sr = np.asarray(small.resize((hr.shape[1], hr.shape[0]), Image.BICUBIC))
        out.append((sr, hr))
    return out


PAIRS = _pairs()


# ----------------------------------------------------------------- independent implementations


def _gauss_ssim_cv2(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al.'s SSIM as TTSR/BasicSR write it: cv2.filter2D + [5:-5, 5:-5]."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = cv2.getGaussianKernel(11, 1.5)
    w = np.outer(k, k.transpose())
    mu1, mu2 = (cv2.filter2D(x, -1, w)[5:-5, 5:-5] for x in (a, b))
    s1 = cv2.filter2D(a * a, -1, w)[5:-5, 5:-5] - mu1**2
    s2 = cv2.filter2D(b * b, -1, w)[5:-5, 5:-5] - mu2**2
    s12 = cv2.filter2D(a * b, -1, w)[5:-5, 5:-5] - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))
    return float(m.mean())


def ttsr_scores(sr: np.ndarray, hr: np.ndarray) -> tuple[float, float]:
    """TTSR utils.py: luma-weighted RGB difference for PSNR, (65.738, 129.057, 25.064)/256 + 16 Y
    for SSIM, no crop, no rounding of Y."""
    a, b = sr.astype(np.float64), hr.astype(np.float64)
    d = (a - b) / 255.0
    d = d[..., 0] * 65.738 / 256 + d[..., 1] * 129.057 / 256 + d[..., 2] * 25.064 / 256
    psnr = -10 * math.log10(np.mean(d**2))
    ya = a @ np.array([65.738, 129.057, 25.064]) / 256.0 + 16.0
    yb = b @ np.array([65.738, 129.057, 25.064]) / 256.0 + 16.0
    return psnr, _gauss_ssim_cv2(ya, yb)


def _matlab_y(img: np.ndarray, rounded: bool) -> np.ndarray:
    """rgb2ycbcr's Y; rounded as MATLAB's imlincomb does for uint8 (T = origT/255 applied per
    channel, then + 16, then round half away from zero: the order decides exact .5 ties)."""
    t = [c / 255.0 for c in (65.481, 128.553, 24.966)]
    t = [(1.0 / 255.0) * c for c in (65.481, 128.553, 24.966)] if rounded else t
    y = t[0] * img[..., 0] + t[1] * img[..., 1] + t[2] * img[..., 2] + 16
    return np.floor(y + 0.5) if rounded else y


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(255.0**2 / np.mean((a - b) ** 2))


def y_scores(sr, hr, rounded: bool, crop: int) -> tuple[float, float]:
    """MATLAB rgb2ycbcr Y (rounded as for uint8 input, or BasicSR's float), border crop."""
    a, b = (_matlab_y(x.astype(np.float64), rounded)[crop:-crop, crop:-crop] for x in (sr, hr))
    return _psnr(a, b), _gauss_ssim_cv2(a, b)


def rgb_scores(sr, hr, crop: int) -> tuple[float, float]:
    """mmagic: RGB, MSE over every channel, SSIM per channel averaged, crop_border = scale."""
    a, b = (x.astype(np.float64)[crop:-crop, crop:-crop] for x in (sr, hr))
    return _psnr(a, b), float(np.mean([_gauss_ssim_cv2(a[..., c].copy(), b[..., c].copy()) for c in range(3)]))


EXPECTED = {
    "ttsr": ttsr_scores,
    "refsr": lambda sr, hr: y_scores(sr, hr, rounded=True, crop=4),
    "basicsr": lambda sr, hr: y_scores(sr, hr, rounded=False, crop=4),
    "mmagic": lambda sr, hr: rgb_scores(sr, hr, crop=4),
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("k", range(len(PAIRS)))
def test_preset_matches_its_codebase_formulas(preset, k):
    sr, hr = PAIRS[k]
    cfg = validate({"evaluation": {"protocol": preset, "stlpips": False, "lpips": False}})
    got = protocol_from_config(cfg).score_pair(sr, hr)
    psnr, ssim = EXPECTED[preset](sr, hr)
    assert got["psnr"] == pytest.approx(psnr, abs=1e-9)
    assert got["ssim"] == pytest.approx(ssim, abs=1e-7)


def test_presets_give_different_numbers_for_the_same_images():
    sr, hr = PAIRS[0]
    psnrs = {p: resolve_protocol(p, 4, "matlab").score_pair(sr, hr)["psnr"] for p in PRESETS}
    assert len({round(v, 6) for v in psnrs.values()}) == len(PRESETS), psnrs


def test_score_cli_prints_the_pipelines_numbers(tmp_path, capsys):
    sr, hr = PAIRS[1]
    Image.fromarray(sr).save(tmp_path / "sr.png")
    Image.fromarray(hr).save(tmp_path / "hr.png")
    for preset in PRESETS:
        assert main(["score", str(tmp_path / "sr.png"), str(tmp_path / "hr.png"), "--protocol", preset,
                     "--no-lpips"]) == 0
        out = json.loads(capsys.readouterr().out)
        cfg = validate({"evaluation": {"protocol": preset}})
        want = protocol_from_config(cfg).score_pair(sr, hr)
        assert out["protocol"] == preset
        assert out["psnr"] == pytest.approx(want["psnr"], abs=1e-12)
        assert out["ssim"] == pytest.approx(want["ssim"], abs=1e-12)
    psnr, ssim = ttsr_scores(sr, hr)
    main(["score", str(tmp_path / "sr.png"), str(tmp_path / "hr.png"), "--protocol", "ttsr", "--no-lpips"])
    out = json.loads(capsys.readouterr().out)
    assert (out["psnr"], out["ssim"]) == (pytest.approx(psnr, abs=1e-9), pytest.approx(ssim, abs=1e-7))


def test_fields_override_a_preset_and_the_caption_says_so():
    cfg = validate({"evaluation": {"protocol": "ttsr", "crop": 4}})
    p = protocol_from_config(cfg)
    assert (p.preset, p.crop, p.y_formula, p.round_y, p.overrides) == ("ttsr", 4, "ttsr", False, ("crop",))
    text = p.describe()
    assert "Protocol `ttsr`" in text and "overridden: crop" in text and "crop=4" in text
    mm = resolve_protocol("mmagic", 3, "matlab")
    assert (mm.crop, mm.y_channel) == (3, False)  # mmagic crops as many pixels as the scale


@pytest.mark.parametrize("evaluation, key", [
    ({"protocol": "nope"}, "config key evaluation.protocol"),
    ({"y_formula": "bt709"}, "config key evaluation.y_formula"),
    ({"levels": ["L1", "HR"], "main_level": "L3"}, "config key evaluation.main_level"),
    ({"levels": ["L1", "L3"], "grid_levels": ["L1", "L5"]}, "config key evaluation.grid_levels"),
    ({"levels": ["L1", "ALL_TOGETHER"]}, "config key evaluation.levels"),
])
def test_bad_protocol_config_is_one_line(evaluation, key):
    with pytest.raises(RefsrError) as exc:
        validate({"evaluation": evaluation})
    assert str(exc.value).startswith(key) and "\n" not in str(exc.value)


def test_unknown_preset_on_the_command_line(tmp_path, capsys):
    sr, hr = PAIRS[0]
    Image.fromarray(hr).save(tmp_path / "hr.png")
    assert main(["score", str(tmp_path / "hr.png"), str(tmp_path / "hr.png"), "--protocol", "srntt"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("refsr: error: --protocol: invalid choice: 'srntt'")


def test_every_table_caption_names_the_preset_and_every_field():
    text = protocol_from_config(defaults() | {"evaluation": defaults("evaluation")}).describe()
    for field in ("y_channel=", "y_formula=", "round_y=", "crop=", "rounding=", "resize="):
        assert field in text


# ----------------------------------------------------------------- ST-LPIPS


@pytest.fixture(scope="module")
def stlpips():
    return STLPIPSMetric("alex")


def test_stlpips_identity_and_order(stlpips):
    sr, hr = PAIRS[0]
    assert stlpips(hr, hr) == 0.0
    mild = stlpips(sr, hr)
    noise = np.random.default_rng(0).normal(0, 40, hr.shape)
    worse = stlpips(np.clip(hr + noise, 0, 255).astype(np.uint8), hr)
    assert 0 < mild < worse and math.isfinite(worse)
    assert "stlpips-pytorch" in stlpips.source and "sha256" in stlpips.source


def test_stlpips_tolerates_a_one_pixel_shift_better_than_noise(stlpips):
    """Its point: a 1-px shift is nearly invisible to it, unlike to PSNR."""
    _, hr = PAIRS[1]
    shifted = np.roll(hr, 1, axis=1)
    noisy = np.clip(hr + np.random.default_rng(1).normal(0, 12, hr.shape), 0, 255).astype(np.uint8)
    assert _psnr(shifted.astype(float), hr.astype(float)) < _psnr(noisy.astype(float), hr.astype(float))
    assert stlpips(shifted, hr) < stlpips(noisy, hr)


def test_stlpips_refuses_weights_that_leave_layers_random():
    import torch

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 1, 1))
    state = {k: v for k, v in net.state_dict().items() if k != "1.weight"}
    with pytest.raises(RefsrError, match=r"missing 1 tensor\(s\) \(1\.weight\)"):
        check_fully_loaded(net, state, "w.pth")
    check_fully_loaded(net, net.state_dict(), "w.pth")  # complete: no error


def test_the_packaged_weights_cover_the_network(stlpips):
    import torch
    from stlpips_pytorch import stlpips as package

    from refsr.evaluation.stlpips import weights_file

    for net in ("alex", "vgg"):
        state = torch.load(weights_file(net), map_location="cpu", weights_only=True)
        model = package.LPIPS(net=net, variant="shift_tolerant", pretrained=False, verbose=False)
        check_fully_loaded(model, state, net)  # every backbone and linear tensor is in the file


# ----------------------------------------------------------------- ALL and ALL_STITCHED


def test_stitching_is_ttsrs_layout():
    rng = np.random.default_rng(0)
    refs = [rng.integers(1, 255, (h, w, 3), dtype=np.uint8) for h, w in ((120, 200), (500, 500), (33, 7))]
    out = stitch_references(refs)
    assert out.shape == (3 * STITCH_SIDE, STITCH_SIDE, 3) and out.dtype == np.uint8
    for i, r in enumerate(refs):
        tile = out[i * 500:(i + 1) * 500]
        assert np.array_equal(tile[: r.shape[0], : r.shape[1]], r)
        tile = tile.copy()
        tile[: r.shape[0], : r.shape[1]] = 0
        assert not tile.any()  # the rest is black


def test_stitching_refuses_a_reference_over_500px(tmp_path):
    big = np.zeros((501, 300, 3), np.uint8)
    with pytest.raises(RefsrError) as exc:
        stitch_references([big], [tmp_path / "ref.png"])
    assert str(exc.value).startswith(f"{tmp_path / 'ref.png'}: reference is 300x501; ALL_STITCHED")


def test_all_levels_use_every_reference(tmp_path):
    import skimage.data

    paths = {}
    for i, crop in enumerate(((0, 0), (40, 10), (90, 60))):
        p = tmp_path / f"r{i}.png"
        Image.fromarray(skimage.data.astronaut()[crop[0]:crop[0] + 64, crop[1]:crop[1] + 80]).save(p)
        paths[f"r{i}"] = p
    g = Group("g", hr=tmp_path / "hr.png", refs=paths)
    lr = np.zeros((16, 16, 3), np.uint8)
    every = level_images(g, "ALL", lr, {}, 4, "matlab")
    assert len(every) == 3 and [r.shape for r in every] == [(64, 80, 3)] * 3
    (stitched,) = level_images(g, "ALL_STITCHED", lr, {}, 4, "matlab")
    assert stitched.shape == (1500, 500, 3) and np.array_equal(stitched[500:564, :80], every[1])
    assert "ALL" in EVAL_LEVELS and "ALL_STITCHED" in EVAL_LEVELS
    assert level_images(Group("h", hr=g.hr), "ALL_STITCHED", lr, {}, 4, "matlab") == []


def test_sr_stitch_refuses_a_reference_over_500px_in_one_line(tmp_path, capsys):
    import skimage.data

    Image.fromarray(skimage.data.astronaut()[:16, :16]).save(tmp_path / "lr.png")
    Image.fromarray(np.zeros((40, 501, 3), np.uint8)).save(tmp_path / "wide.png")
    out = tmp_path / "sr.png"
    argv = ["sr", "--lr", str(tmp_path / "lr.png"), "--checkpoint", "bicubic", "--out", str(out),
            "--ref", str(tmp_path / "wide.png"), "--stitch"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"refsr: error: {tmp_path / 'wide.png'}: reference is 501x40")
    assert not out.exists()

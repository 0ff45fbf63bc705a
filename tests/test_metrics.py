"""Tests for refsr.evaluation (metrics, lpips, protocol): hand-computed values, skimage cross-checks, LPIPS offline behaviour.

No test touches the network: LPIPS tests point TORCH_HOME at an empty directory and make
every download path raise URLError.
"""

from __future__ import annotations

import math
import urllib.error

import numpy as np
import pytest
from conftest import protocol

from refsr.core.errors import RefsrError
from refsr.evaluation import lpips as lpips_module
from refsr.evaluation import metrics
from refsr.evaluation.lpips import LPIPSMetric
from refsr.evaluation.metrics import crop_border, psnr, quantize_uint8, rgb2ycbcr_y, ssim
from refsr.evaluation.protocol import score_pair


def gray(value: int, h: int = 24, w: int = 20) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


def textured(seed: int = 0, h: int = 48, w: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def noisy(img: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).round().astype(np.uint8)


# ----------------------------------------------------------------------------- rgb2ycbcr


def test_y_of_white_and_black_is_matlab_range():
    assert rgb2ycbcr_y(gray(255, 2, 2)).tolist() == [[235.0] * 2] * 2
    assert rgb2ycbcr_y(gray(0, 2, 2)).tolist() == [[16.0] * 2] * 2


def test_y_primaries_match_matlab_rgb2ycbcr_uint8():
    # MATLAB: rgb2ycbcr(uint8([255 0 0])) -> Y 81; green -> 145; blue -> 41.
    img = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8)
    assert rgb2ycbcr_y(img).tolist() == [[81.0, 145.0, 41.0]]
    unrounded = rgb2ycbcr_y(img, round_y=False)
    np.testing.assert_allclose(unrounded, [[16 + 65.481, 16 + 128.553, 16 + 24.966]], atol=1e-12)


def test_y_rounding_is_matlab_uint8_rounding():
    # gray v -> Y = 16 + 219 v / 255 (the row sums to 219); gray 1 -> 16.8588 -> 17
    img = np.array([[[1, 1, 1], [85, 85, 85], [3, 3, 3]]], dtype=np.uint8)
    np.testing.assert_allclose(
        rgb2ycbcr_y(img, round_y=False), [[16 + 219 / 255, 89, 16 + 657 / 255]]
    )
    assert rgb2ycbcr_y(img).tolist() == [[17.0, 89.0, 19.0]]


def test_y_rounds_exact_half_up():
    # 65.481 R + 128.553 G + 24.966 B == 255 * (k + 0.5) exactly for this colour; MATLAB's
    # round goes half away from zero (numpy's rint would go to even).
    v = np.arange(256)
    rgb = None
    for r in range(256):
        n = 65481 * r + 128553 * v[:, None] + 24966 * v[None, :]
        hit = np.argwhere(n % 255000 == 127500)
        if hit.size:
            for g, b in hit:
                y = rgb2ycbcr_y(np.array([[[r, g, b]]], dtype=np.uint8), round_y=False)[0, 0]
                if y % 1 == 0.5:
                    rgb = (r, int(g), int(b), y)
                    break
        if rgb:
            break
    assert rgb is not None
    r, g, b, y = rgb
    assert rgb2ycbcr_y(np.array([[[r, g, b]]], dtype=np.uint8))[0, 0] == y + 0.5


# ----------------------------------------------------------------------------- crop


def test_crop_border():
    img = np.arange(10 * 12 * 3).reshape(10, 12, 3)
    out = crop_border(img, 2)
    assert out.shape == (6, 8, 3)
    assert out[0, 0, 0] == img[2, 2, 0]
    assert crop_border(img, 0) is img
    with pytest.raises(ValueError):
        crop_border(img, 5)
    with pytest.raises(ValueError):
        crop_border(img, -1)


def test_border_differences_ignored_by_crop():
    hr = textured(3, 32, 32)
    sr = hr.copy()
    sr[:4] = 0
    sr[:, -4:] = 255
    assert psnr(sr, hr, crop=4) == math.inf
    assert ssim(sr, hr, crop=4) == pytest.approx(1.0)
    assert psnr(sr, hr, crop=0) < 30
    assert ssim(sr, hr, crop=0) < 1.0
    sr[4, 4] = hr[4, 4] ^ 0xFF  # just inside the kept region
    assert psnr(sr, hr, crop=4) < math.inf


# ----------------------------------------------------------------------------- PSNR


def test_psnr_identical_is_inf():
    img = textured()
    assert psnr(img, img) == math.inf
    assert psnr(img, img, crop=0, y_channel=False) == math.inf


def test_psnr_constant_y_difference():
    # gray 85 -> Y 89, gray 170 -> Y 162 exactly: d = 73 everywhere.
    assert psnr(gray(170), gray(85)) == pytest.approx(10 * math.log10(255**2 / 73**2), abs=1e-12)


def test_psnr_rgb_half_pixels_differ():
    hr = gray(100, 16, 16)
    sr = hr.copy()
    sr[:, :8, :] = 110  # 8 of the 16 columns, all channels -> MSE = 100 / 2
    expect = 10 * math.log10(255**2 / 50.0)
    assert psnr(sr, hr, crop=0, y_channel=False) == pytest.approx(expect, abs=1e-12)


def test_psnr_rgb_one_channel():
    hr = gray(50, 10, 10)
    sr = hr.copy()
    sr[..., 0] += 6  # MSE over all channels = 36 / 3
    assert psnr(sr, hr, crop=0, y_channel=False) == pytest.approx(10 * math.log10(255**2 / 12))


def test_psnr_y_rounding_option_matters():
    hr = gray(1)  # Y 16.86 -> 17
    sr = gray(0)  # Y 16
    assert psnr(sr, hr) == pytest.approx(10 * math.log10(255**2 / 1.0))
    d = 219 / 255
    assert psnr(sr, hr, round_y=False) == pytest.approx(10 * math.log10(255**2 / d**2))


def test_psnr_matches_skimage_on_y():
    skm = pytest.importorskip("skimage.metrics")
    hr = textured(5)
    sr = noisy(hr, 10)
    ya = crop_border(rgb2ycbcr_y(sr), 4)
    yb = crop_border(rgb2ycbcr_y(hr), 4)
    ref = skm.peak_signal_noise_ratio(yb, ya, data_range=255)
    assert psnr(sr, hr) == pytest.approx(ref, abs=1e-10)


# ----------------------------------------------------------------------------- SSIM


def test_ssim_identical_is_one():
    img = textured()
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    assert ssim(img, img, y_channel=False) == pytest.approx(1.0, abs=1e-12)


def test_ssim_constant_images_hand_formula():
    # constant images: all variances are 0, so SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b = 100.0, 110.0
    c1 = (0.01 * 255) ** 2
    expect = (2 * a * b + c1) / (a * a + b * b + c1)
    got = ssim(gray(110), gray(100), crop=0, y_channel=False)
    assert got == pytest.approx(expect, abs=1e-12)
    # same on Y: gray 85 / 170 -> Y 89 / 162
    a, b = 89.0, 162.0
    expect = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ssim(gray(85), gray(170)) == pytest.approx(expect, abs=1e-12)


def test_ssim_window_is_normalised_gaussian():
    g = metrics.gaussian_window_1d()
    w2 = np.outer(g, g)
    x = np.arange(11) - 5
    ref = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * 1.5**2))
    np.testing.assert_allclose(w2, ref / ref.sum(), rtol=1e-14)


def test_ssim_map_is_valid_size():
    a = np.random.default_rng(0).random((30, 25)) * 255
    assert metrics.ssim_map(a, a).shape == (20, 15)


def test_ssim_symmetric():
    hr = textured(7)
    sr = noisy(hr, 25)
    assert ssim(sr, hr) == pytest.approx(ssim(hr, sr), abs=1e-14)
    assert ssim(sr, hr, y_channel=False) == pytest.approx(ssim(hr, sr, y_channel=False), abs=1e-14)


@pytest.mark.parametrize("y_channel", [True, False])
def test_ssim_matches_skimage(y_channel):
    # skimage with gaussian_weights=True, sigma=1.5 (truncate 3.5 -> radius 5 -> 11x11),
    # use_sample_covariance=False and data_range=255 uses the same window and constants.
    # It filters the whole image with reflect padding but then drops a 5-pixel border of
    # the SSIM map before averaging, i.e. it averages exactly the 'valid' region, so the
    # results agree to rounding error (not just on the interior).
    skm = pytest.importorskip("skimage.metrics")
    hr = textured(11, 64, 56)
    sr = noisy(hr, 20, seed=12)
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    if y_channel:
        ref = skm.structural_similarity(
            crop_border(rgb2ycbcr_y(sr), 4), crop_border(rgb2ycbcr_y(hr), 4), **kw
        )
    else:
        ref = skm.structural_similarity(
            crop_border(sr, 4).astype(np.float64),
            crop_border(hr, 4).astype(np.float64),
            channel_axis=2,
            **kw,
        )
    assert ssim(sr, hr, y_channel=y_channel) == pytest.approx(ref, abs=1e-10)


def test_ssim_too_small_after_crop():
    with pytest.raises(RefsrError, match="at least 11x11"):
        ssim(gray(0, 16, 16), gray(1, 16, 16), crop=4)


# ----------------------------------------------------------------------------- errors


def test_size_mismatch_names_both_sizes_and_files():
    with pytest.raises(RefsrError) as info:
        psnr(gray(0, 32, 48), gray(0, 36, 48), sr_name="out/sr.png", hr_name="data/hr.png")
    msg = str(info.value)
    assert "48x32" in msg and "48x36" in msg
    assert "out/sr.png" in msg and "data/hr.png" in msg
    assert "\n" not in msg
    with pytest.raises(RefsrError, match="48x32.*48x36"):
        score_pair(gray(0, 32, 48), gray(0, 36, 48))


def test_grayscale_array_rejected_for_y():
    with pytest.raises(RefsrError, match="RGB"):
        psnr(np.zeros((20, 20), np.uint8), np.zeros((20, 20), np.uint8))
    assert (
        psnr(np.zeros((20, 20), np.uint8), np.zeros((20, 20), np.uint8), y_channel=False)
        == math.inf
    )


def test_quantize_uint8():
    out = quantize_uint8(np.array([-3.0, 0.5, 1.49, 254.5, 300.0]))
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 1, 1, 255, 255]


# ----------------------------------------------------------------------------- LPIPS


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No cached weights, no env override, and every download raises URLError."""
    import torch.hub
    import torchvision.models._api as tv_api

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv(lpips_module.LPIPS_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(tv_api, "load_state_dict_from_url", no_network)
    return tmp_path


def test_lpips_offline_is_nan_with_reason(offline):
    m = LPIPSMetric()
    assert m.available is False
    assert "AlexNet" in m.reason and "URLError" in m.reason
    assert "refsr download-weights" in m.reason and "\n" not in m.reason
    assert m.source is None
    img = textured(0, 64, 64)
    assert math.isnan(m(img, img))
    out = score_pair(img, img, lpips_metric=m)
    assert out["psnr"] == math.inf and math.isnan(out["lpips"])


def test_lpips_no_download_mode_is_nan(offline):
    m = LPIPSMetric(allow_download=False)
    assert not m.available and "cache" in m.reason


def test_lpips_missing_local_file(offline, monkeypatch):
    monkeypatch.setenv(lpips_module.LPIPS_WEIGHTS_ENV, str(offline / "nope.pth"))
    m = LPIPSMetric()
    assert not m.available
    assert "nope.pth" in m.reason and "not found" in m.reason
    assert math.isnan(m(gray(0, 64, 64), gray(0, 64, 64)))


def test_lpips_bad_local_file(offline):
    import torch

    bad = offline / "bad.pth"
    torch.save({"classifier.1.weight": torch.zeros(3)}, bad)
    m = LPIPSMetric(weights_path=bad)
    assert not m.available and "features.0.weight" in m.reason
    junk = offline / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    m = LPIPSMetric(weights_path=junk)
    assert not m.available and "junk.pth" in m.reason


@pytest.fixture(scope="module")
def random_lpips(tmp_path_factory):
    """LPIPS through its real loading path, from a file holding a random torchvision AlexNet
    (for exercising the code only: never a reported number)."""
    import torch
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("lpips") / "random_alexnet.pth"
    torch.save(torchvision.models.alexnet().state_dict(), path)
    return LPIPSMetric(weights_path=path, allow_download=False)


def test_lpips_random_trunk_identity_zero_and_positive(random_lpips):
    assert random_lpips.available
    assert "random_alexnet.pth" in random_lpips.source
    x = textured(1, 64, 64)
    y = noisy(x, 30)
    assert random_lpips(x, x) == pytest.approx(0.0, abs=1e-7)
    d = random_lpips(x, y)
    assert d > 0 and math.isfinite(d)


def test_lpips_size_mismatch(random_lpips):
    with pytest.raises(RefsrError, match="64x64.*64x48"):
        random_lpips(gray(0, 64, 64), gray(0, 48, 64))


@pytest.mark.parametrize("layout", ["full", "features_only"])
def test_lpips_loads_local_torchvision_state_dict(offline, monkeypatch, layout):
    # A torchvision-format alexnet state dict (random values: only the loading is tested)
    # is mapped onto lpips' slice1..slice5 and replaces every trunk tensor.
    import torch
    import torchvision

    torch.manual_seed(123)
    state = torchvision.models.alexnet().state_dict()
    if layout == "features_only":
        state = {k: v for k, v in state.items() if k.startswith("features.")}
    path = offline / "alexnet.pth"
    torch.save(state, path)
    monkeypatch.setenv(lpips_module.LPIPS_WEIGHTS_ENV, str(path))
    m = LPIPSMetric()
    assert m.available, m.reason
    assert m.reason is None and "alexnet.pth" in m.source and "sha256" in m.source
    net = m._model.net
    for idx, k in [(0, 1), (3, 2), (6, 3), (8, 4), (10, 5)]:
        conv = getattr(getattr(net, f"slice{k}"), str(idx))
        assert torch.equal(conv.weight, state[f"features.{idx}.weight"])
        assert torch.equal(conv.bias, state[f"features.{idx}.bias"])
    x = textured(2, 64, 64)
    assert m(x, x) == pytest.approx(0.0, abs=1e-7)


# ----------------------------------------------------------------------------- score_pair / Protocol


def test_score_pair_keys():
    hr = textured(4)
    sr = noisy(hr, 5)
    out = score_pair(sr, hr)
    assert set(out) == {"psnr", "ssim", "lpips", "stlpips"}
    assert out["psnr"] == pytest.approx(psnr(sr, hr))
    assert out["ssim"] == pytest.approx(ssim(sr, hr))
    assert math.isnan(out["lpips"]) and math.isnan(out["stlpips"])


def test_protocol_defaults_and_describe():
    p = protocol()  # the schema's defaults
    assert (p.scale, p.crop, p.y_channel, p.resize, p.rounding, p.round_y) == (
        4,
        4,
        True,
        "matlab",
        "uint8",
        True,
    )
    text = p.describe()
    assert "\n" not in text
    for part in (
        "Protocol `refsr`",
        "y_channel=true, y_formula=matlab, round_y=true, crop=4, rounding=uint8, resize=matlab",
        "rgb2ycbcr",
        "4-px border",
        "11x11",
        "1.5",
        "MATLAB bicubic",
        "LPIPS AlexNet v0.1",
    ):
        assert part in text
    alt = protocol(crop=0, y_channel=False, resize="pil", rounding="none").describe()
    assert "RGB" in alt and "no border crop" in alt and "PIL" in alt and "float" in alt


def test_protocol_fields_are_checked():
    with pytest.raises(RefsrError, match=r"protocol\.resize"):
        protocol(resize="lanczos")
    with pytest.raises(RefsrError, match=r"protocol\.crop"):
        protocol(crop=-1)
    with pytest.raises(RefsrError, match=r"protocol\.y_channel"):
        protocol(y_channel="yes")
    with pytest.raises(RefsrError, match=r"protocol\.scale"):
        protocol(scale=4.0)


def test_protocol_score_pair_rounds_outputs():
    hr = textured(9)
    sr_float = hr.astype(np.float64) + 0.3  # rounds back to hr under rounding="uint8"
    assert protocol().score_pair(sr_float, hr)["psnr"] == math.inf
    assert protocol(rounding="none").score_pair(sr_float, hr)["psnr"] < math.inf

"""PSNR and SSIM as the default evaluation protocol computes them (:mod:`.protocol`).

The default protocol, stated in every table caption by
:meth:`~refsr.evaluation.protocol.Protocol.describe`:

* **Y channel** of MATLAB's ``rgb2ycbcr`` (ITU-R BT.601, studio swing, Y in [16, 235]).
  For ``uint8`` input MATLAB returns ``uint8``, i.e. Y is *rounded* (half away from
  zero) to an integer; :func:`rgb2ycbcr_y` does the same by default (``round_y=True``).
  BasicSR's ``calculate_psnr(test_y_channel=True)`` does not round (it converts to float
  first); pass ``round_y=False`` to compare with it. The difference is up to ~0.05 dB.
* **Border crop** of ``crop`` pixels on every side before PSNR and SSIM.
* **PSNR** with data range 255 on the (rounded) Y values; identical images give ``inf``.
* **SSIM** as Wang et al.'s reference ``ssim_index.m``: Gaussian 11x11 window,
  sigma = 1.5, normalised to sum 1; K1 = 0.01, K2 = 0.03, L = 255; ``filter2(..., 'valid')``
  (no padding; the map is 10 pixels smaller than the cropped image in each dimension);
  population (not sample) variances; result = mean of the SSIM map. In RGB mode
  (``y_channel=False``) SSIM is computed per channel and averaged.
* **LPIPS** (:mod:`.lpips`) on the *full* RGB image (no border crop, as the LPIPS
  reference scripts do), scaled from uint8 to [-1, 1]; NaN with a reason when the ImageNet
  AlexNet weights cannot be loaded, never computed with a random trunk.

All functions take ``uint8`` RGB ``(H, W, 3)`` arrays (what :func:`refsr.core.imageio.read_image`
returns). Float arrays are accepted as values on the 0..255 scale (for the
``rounding="none"`` protocol variant); :func:`quantize_uint8` is the rounding used for
model outputs under the default ``rounding="uint8"``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from refsr.core.errors import RefsrError

# --------------------------------------------------------------------------------------
# colour conversion and cropping
# --------------------------------------------------------------------------------------

#: MATLAB ``rgb2ycbcr`` Y row (for R, G, B in 0..255, before division by 255).
_Y_ROW = (65.481, 128.553, 24.966)
#: What MATLAB actually multiplies uint8 R, G, B by: ``(1/255) * origT`` (computed that way
#: round so that floating-point ties resolve as in ``imlincomb``).
_Y_COEF = tuple((1.0 / 255.0) * c for c in _Y_ROW)
#: TTSR's ``utils.py`` (``calc_psnr``/``calc_ssim``): ``Y = (65.738 R + 129.057 G + 25.064 B) / 256 + 16``.
_Y_TTSR_ROW = (65.738, 129.057, 25.064)

#: The luma formulas a protocol can name: ``matlab`` (``rgb2ycbcr``, BT.601 over 255) and
#: ``ttsr`` (the same BT.601 row over 256, as TTSR's evaluation code writes it).
Y_FORMULAS = ("matlab", "ttsr")


def rgb2ycbcr_y(img: np.ndarray, round_y: bool = True, formula: str = "matlab") -> np.ndarray:
    """Y of MATLAB's ``rgb2ycbcr`` (or TTSR's variant) for RGB values on the 0..255 scale, as float64.

    ``formula="matlab"``: ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255``, in [16, 235].
    ``formula="ttsr"``: ``Y = 16 + (65.738 R + 129.057 G + 25.064 B) / 256`` (TTSR's
    ``calc_psnr``/``calc_ssim``, which never round it).

    ``round_y=True`` (default) reproduces MATLAB for ``uint8`` input, which returns
    ``uint8``: ``imlincomb`` evaluates ``T1*R + T2*G + T3*B + 16`` in double with
    ``T = origT / 255`` and rounds half away from zero. (194 of the 2^24 colours are exact
    ties in exact arithmetic; in that floating-point order 45 of them land exactly on .5
    and round up, the rest fall just below.) ``round_y=False`` keeps the float value, as
    BasicSR's ``to_y_channel`` does.
    """
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"rgb2ycbcr_y expects an (H, W, 3) RGB array, got shape {arr.shape}")
    rgb = arr.astype(np.float64, copy=False)
    if formula == "matlab":
        y = _Y_COEF[0] * rgb[..., 0] + _Y_COEF[1] * rgb[..., 1] + _Y_COEF[2] * rgb[..., 2] + 16.0
    elif formula == "ttsr":
        y = rgb @ np.asarray(_Y_TTSR_ROW) / 256.0 + 16.0
    else:
        raise ValueError(f"unknown Y formula {formula!r}; use one of {Y_FORMULAS}")
    if round_y:
        y = np.floor(y + 0.5)  # MATLAB round (half away from zero); y > 0 here
        np.clip(y, 0.0, 255.0, out=y)  # uint8 saturation (only reachable for float input)
    return y


def quantize_uint8(img: np.ndarray) -> np.ndarray:
    """Round a float image on the 0..255 scale to ``uint8`` (half away from zero, clipped)."""
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        return arr
    out = np.floor(np.clip(arr.astype(np.float64), 0.0, 255.0) + 0.5)
    return out.astype(np.uint8)


def crop_border(img: np.ndarray, crop: int) -> np.ndarray:
    """Remove ``crop`` pixels from each side of the first two axes (``crop=0``: unchanged)."""
    crop = int(crop)
    if crop < 0:
        raise ValueError(f"crop must be >= 0, got {crop}")
    if crop == 0:
        return img
    h, w = img.shape[:2]
    if 2 * crop >= h or 2 * crop >= w:
        raise ValueError(f"crop {crop} leaves nothing of a {w}x{h} (width x height) image")
    return img[crop : h - crop, crop : w - crop, ...]


# --------------------------------------------------------------------------------------
# input checking
# --------------------------------------------------------------------------------------


def image_size(a: np.ndarray) -> str:
    """``WxH[xC]`` for messages."""
    return f"{a.shape[1]}x{a.shape[0]}" + (f"x{a.shape[2]}" if a.ndim == 3 else "")


def _prepare(
    sr: np.ndarray,
    hr: np.ndarray,
    crop: int,
    y_channel: bool,
    round_y: bool,
    sr_name: Any,
    hr_name: Any,
    y_formula: str = "matlab",
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a pair and return the float64 planes the metric is computed on, ``(H, W, C)``."""
    sr_label = str(sr_name) if sr_name is not None else "SR"
    hr_label = str(hr_name) if hr_name is not None else "HR"
    sr, hr = np.asarray(sr), np.asarray(hr)
    for a, label in ((sr, sr_label), (hr, hr_label)):
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3)):
            raise RefsrError(label, f"expected an HxW or HxWx3 image, got array shape {a.shape}")
        if y_channel and (a.ndim != 3 or a.shape[2] != 3):
            raise RefsrError(label, f"Y-channel metrics need an RGB image, got shape {a.shape}")
    if sr.shape != hr.shape:
        raise RefsrError(
            f"{sr_label} vs {hr_label}",
            f"size mismatch: SR is {image_size(sr)} but HR is {image_size(hr)} (width x height[x channels])",
        )
    h, w = sr.shape[:2]
    if crop < 0 or 2 * crop >= min(h, w):
        raise RefsrError(
            sr_label, f"border crop {crop} leaves nothing of a {w}x{h} (width x height) image"
        )
    if y_channel:
        a = rgb2ycbcr_y(sr, round_y, y_formula)[..., None]
        b = rgb2ycbcr_y(hr, round_y, y_formula)[..., None]
    else:
        a, b = sr.astype(np.float64), hr.astype(np.float64)
        if a.ndim == 2:
            a, b = a[..., None], b[..., None]
    return crop_border(a, crop), crop_border(b, crop)


# --------------------------------------------------------------------------------------
# PSNR and SSIM
# --------------------------------------------------------------------------------------

DATA_RANGE = 255.0


def psnr(
    sr: np.ndarray,
    hr: np.ndarray,
    crop: int = 4,
    y_channel: bool = True,
    *,
    round_y: bool = True,
    y_formula: str = "matlab",
    sr_name: Any = None,
    hr_name: Any = None,
) -> float:
    """PSNR in dB (data range 255) after ``crop``; on MATLAB Y or on all RGB channels.

    In RGB mode the MSE is taken over all pixels and channels together (one PSNR, not a
    mean of per-channel PSNRs). Identical inputs give ``inf``. ``sr_name``/``hr_name``
    (paths or labels) name the inputs in errors.
    """
    a, b = _prepare(sr, hr, crop, y_channel, round_y, sr_name, hr_name, y_formula)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(DATA_RANGE**2 / mse)


SSIM_WIN = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def gaussian_window_1d(size: int = SSIM_WIN, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian; its outer product is MATLAB's ``fspecial('gaussian', size, sigma)``."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``filter2(g' * g, x, 'valid')`` by two separable 1-D correlations in float64."""
    n = g.size
    t = np.lib.stride_tricks.sliding_window_view(x, n, axis=0) @ g  # (H-n+1, W)
    return np.lib.stride_tricks.sliding_window_view(t, n, axis=1) @ g  # (H-n+1, W-n+1)


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Wang et al.'s SSIM map for two 2-D float arrays on the 0..255 scale ('valid' size)."""
    g = gaussian_window_1d()
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    mu1, mu2 = _filter_valid(a, g), _filter_valid(b, g)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = _filter_valid(a * a, g) - mu1_sq
    s2 = _filter_valid(b * b, g) - mu2_sq
    s12 = _filter_valid(a * b, g) - mu1_mu2
    return ((2.0 * mu1_mu2 + c1) * (2.0 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))


def ssim(
    sr: np.ndarray,
    hr: np.ndarray,
    crop: int = 4,
    y_channel: bool = True,
    *,
    round_y: bool = True,
    y_formula: str = "matlab",
    sr_name: Any = None,
    hr_name: Any = None,
) -> float:
    """Mean SSIM (``ssim_index.m``) after ``crop``; RGB mode averages the per-channel means.

    The cropped image must be at least 11x11 (MATLAB's ``ssim_index`` returns -Inf for
    smaller ones; here that is a RefsrError).
    """
    a, b = _prepare(sr, hr, crop, y_channel, round_y, sr_name, hr_name, y_formula)
    if min(a.shape[:2]) < SSIM_WIN:
        h, w = a.shape[:2]
        raise RefsrError(
            str(sr_name) if sr_name is not None else "SR",
            f"image is {w}x{h} after a {crop}-pixel border crop; SSIM needs at least "
            f"{SSIM_WIN}x{SSIM_WIN}",
        )
    return float(np.mean([ssim_map(a[..., c], b[..., c]).mean() for c in range(a.shape[2])]))

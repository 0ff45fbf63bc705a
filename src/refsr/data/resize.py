"""Degradation: mod-crop and MATLAB-compatible antialiased bicubic ``imresize``.

``imresize`` ports MATLAB's algorithm (Keys cubic, a = -0.5; kernel widened by
1/scale when shrinking, which is MATLAB's antialiasing; symmetric boundary
handling; one pass per axis, height first, in float64; a single rounding to
uint8 at the end). ``method="pil"`` selects Pillow's bicubic instead, for
comparison with codebases that use it.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from refsr.core.errors import RefsrError

KERNEL_WIDTH = 4.0  # support of the cubic kernel, in input pixels at scale 1
METHODS = ("matlab", "pil")


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def resize_weights(in_len: int, out_len: int, scale: float, antialias: bool = True) -> np.ndarray:
    """The dense ``(out_len, in_len)`` matrix that MATLAB's imresize applies along one axis."""
    shrink = scale < 1 and antialias
    width = KERNEL_WIDTH / scale if shrink else KERNEL_WIDTH
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # output pixel centre in 1-based input coordinates
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input indices
    dist = u[:, None] - idx
    w = scale * cubic(scale * dist) if shrink else cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    # symmetric boundary: mirror indices that fall outside [1, in_len]
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    src = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    mat = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.repeat(np.arange(out_len), taps)
    np.add.at(mat, (rows, src.ravel()), w.ravel())
    return mat


def _out_size(size: int, scale: float) -> int:
    return int(math.ceil(size * scale - 1e-9))


def imresize_float(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` on a float array ``(H, W[, C])``; no rounding."""
    img = np.asarray(img, dtype=np.float64)
    h, w = img.shape[:2]
    oh, ow = _out_size(h, scale), _out_size(w, scale)
    wh = resize_weights(h, oh, scale)
    ww = resize_weights(w, ow, scale)
    out = np.tensordot(wh, img, axes=([1], [0]))  # (oh, W, C)
    out = np.moveaxis(np.tensordot(ww, out, axes=([1], [1])), 0, 1)  # (oh, ow, C)
    return out


def imresize(img: np.ndarray, scale: float, method: str = "matlab") -> np.ndarray:
    """Resize a uint8 image by ``scale`` (e.g. 1/4 or 4). Output size is ``ceil(size * scale)``."""
    if method not in METHODS:
        raise RefsrError("resize", f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise TypeError(f"imresize expects uint8, got {img.dtype}")
    if method == "pil":
        h, w = img.shape[:2]
        size = (_out_size(w, scale), _out_size(h, scale))
        return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BICUBIC))
    return _imresize_strips(img, scale)


#: Columns / rows per strip of :func:`imresize`'s two passes: a large photo is never held in
#: float64 whole (a 4000x3000 one would be 288 MB, and as much again per temporary).
STRIP = 256


def _imresize_strips(img: np.ndarray, scale: float) -> np.ndarray:
    """:func:`imresize_float` rounded to uint8, in strips: the height pass over column strips,
    the width pass over row strips (each output value is the same dot product, so the same)."""
    h, w = img.shape[:2]
    oh, ow = _out_size(h, scale), _out_size(w, scale)
    wh, ww = resize_weights(h, oh, scale), resize_weights(w, ow, scale)
    mid = np.empty((oh, w) + img.shape[2:], dtype=np.float64)
    for c0 in range(0, w, STRIP):
        mid[:, c0:c0 + STRIP] = np.tensordot(wh, img[:, c0:c0 + STRIP].astype(np.float64), axes=([1], [0]))
    out = np.empty((oh, ow) + img.shape[2:], dtype=np.uint8)
    for r0 in range(0, oh, STRIP):
        part = np.moveaxis(np.tensordot(ww, mid[r0:r0 + STRIP], axes=([1], [1])), 0, 1)
        out[r0:r0 + STRIP] = np.clip(np.rint(part), 0, 255)
    return out


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so that both sides are multiples of ``scale`` (MATLAB ``modcrop``)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def degrade(hr: np.ndarray, scale: int = 4, method: str = "matlab",
            where: object = "image") -> tuple[np.ndarray, np.ndarray]:
    """Return ``(hr_cropped, lr)``: HR mod-cropped to ``scale`` and its bicubic ``1/scale`` version.

    ``where`` (the file name) is what a one-line error names.
    """
    if isinstance(scale, bool) or int(scale) != scale or scale < 1:
        raise RefsrError("scale", f"must be a positive integer, got {scale}")
    h, w = hr.shape[:2]
    if h < scale or w < scale:
        raise RefsrError(where, f"image is {w}x{h}, too small to downscale by {scale} "
                                f"(nothing is left after mod-cropping it to a multiple of {scale})")
    hr = modcrop(hr, scale)
    return hr, imresize(hr, 1.0 / scale, method)


def upscale(lr: np.ndarray, scale: int = 4, method: str = "matlab") -> np.ndarray:
    """Bicubic upscaling by an integer factor (the ``I^{LR↑}`` of the paper)."""
    return imresize(lr, float(scale), method)


def down_up(img: np.ndarray, scale: int = 4, method: str = "matlab") -> np.ndarray:
    """``I^{Ref↓↑}``: mod-crop, bicubic down by ``scale`` then up again (same size as the crop)."""
    _, lr = degrade(img, scale, method)
    return upscale(lr, scale, method)

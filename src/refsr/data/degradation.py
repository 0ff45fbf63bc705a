"""A realistic, seeded LR degradation: the second-order pipeline Real-ESRGAN describes.

``degradation: {test: realistic}`` (or ``train``) replaces MATLAB bicubic ×1/scale by two
rounds of

1. blur: a Gaussian kernel, isotropic or (with probability ``anisotropic_prob``) anisotropic
   with a random rotation, each σ drawn from ``sigma`` (round 2: ``sigma2``);
2. resize: by a random factor from ``resize`` (round 2: ``resize2``), bilinear or bicubic or
   area at random;
3. noise: Gaussian (σ from ``gaussian_sigma``, in 0..255 units; grey, i.e. the same in every
   channel, with probability ``gray_noise_prob``) or, with probability ``poisson_prob``,
   Poisson (scale from ``poisson_scale``);
4. JPEG at a quality drawn from ``jpeg_quality``;

with the final resize to exactly ``HR / scale`` (bicubic) before the second JPEG. Every random
draw comes from a generator seeded by ``seed`` and the image's name, so an image's LR does not
depend on the others; the draws are returned (and written to ``lr/degradation.json``) with the
parameters.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

_INTERP = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA}


def gaussian_kernel(size: int, sx: float, sy: float, theta: float) -> np.ndarray:
    """A ``size`` x ``size`` normalised Gaussian with std ``sx``, ``sy`` rotated by ``theta``."""
    r = size // 2
    y, x = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float64)
    c, s = math.cos(theta), math.sin(theta)
    u, v = c * x + s * y, -s * x + c * y
    k = np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return k / k.sum()


def _round(x: np.ndarray, rng: np.random.Generator, p: Mapping[str, Any], stage: int, draws: dict) -> np.ndarray:
    """One round of blur, resize, noise, JPEG on float RGB in [0, 1]; records its draws."""
    sig = p["sigma"] if stage == 1 else p["sigma2"]
    size = int(p["kernel_size"])
    if rng.random() < p["anisotropic_prob"]:
        sx, sy, theta = rng.uniform(*sig), rng.uniform(*sig), rng.uniform(0, math.pi)
    else:
        sx = sy = rng.uniform(*sig)
        theta = 0.0
    x = cv2.filter2D(x, -1, gaussian_kernel(size, sx, sy, theta), borderType=cv2.BORDER_REFLECT_101)
    factor = float(rng.uniform(*(p["resize"] if stage == 1 else p["resize2"])))
    mode = str(rng.choice(list(_INTERP)))
    h, w = x.shape[:2]
    x = cv2.resize(x, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=_INTERP[mode])
    if rng.random() < p["poisson_prob"]:
        scale = float(rng.uniform(*p["poisson_scale"]))
        # Shot noise of an 8-bit signal (256 levels), its deviation amplified by ``scale``.
        x = np.clip(x, 0, 1)
        x = (x + (rng.poisson(x * 256) / 256 - x) * scale).astype(np.float32)
        noise = {"kind": "poisson", "scale": scale}
    else:
        sigma = float(rng.uniform(*p["gaussian_sigma"]))
        gray = bool(rng.random() < p["gray_noise_prob"])
        shape = x.shape[:2] + ((1,) if gray else (3,))
        x = x + rng.normal(0, sigma / 255, size=shape).astype(np.float32)
        noise = {"kind": "gaussian", "sigma": sigma, "gray": gray}
    draws[f"round{stage}"] = {"blur": {"sigma_x": sx, "sigma_y": sy, "theta": theta}, "resize": factor,
                              "interpolation": mode, "noise": noise}
    return np.clip(x, 0, 1)


def _jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    u8 = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255


def realistic(hr: np.ndarray, scale: int, params: Mapping[str, Any], seed: int, name: str) -> tuple[np.ndarray, dict]:
    """``(lr, draws)``: the uint8 LR of the (mod-cropped) uint8 ``hr``, ``HR / scale`` in size."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    h, w = hr.shape[0] // scale, hr.shape[1] // scale
    x = hr[: h * scale, : w * scale].astype(np.float32) / 255
    draws: dict = {}
    x = _round(x, rng, params, 1, draws)
    q1 = int(rng.integers(params["jpeg_quality"][0], params["jpeg_quality"][1] + 1))
    x = _jpeg(x, q1)
    x = _round(x, rng, params, 2, draws)
    x = np.clip(cv2.resize(x, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)
    q2 = int(rng.integers(params["jpeg_quality"][0], params["jpeg_quality"][1] + 1))
    x = _jpeg(x, q2)
    draws["jpeg_quality"] = [q1, q2]
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8), draws

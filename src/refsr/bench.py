"""Micro-benchmarks behind ``refsr bench``: feature swapping at a CUFED5-like size."""

from __future__ import annotations

import resource
import time

import numpy as np
import torch

from .errors import RefsrError


def parse_size(text: str) -> tuple[int, int]:
    """``"500x332"`` -> ``(500, 332)`` (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise RefsrError("--hr-size", f"expected WIDTHxHEIGHT like 500x332, got {text!r}") from None
    if w < 12 or h < 12:
        raise RefsrError("--hr-size", f"{w}x{h} is smaller than one relu3_1 patch (12x12)")
    return w, h


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_swap(width: int, height: int, max_mb: float = 256, repeats: int = 3,
               vgg_weights: str | None = None) -> dict:
    """Time matching + swapping of a real photo against a shifted view of itself.

    Reports the median seconds of :func:`refsr.swap.match` and of :func:`refsr.swap.swap`,
    the matching's GFLOP/s (2 * N_content * N_ref * patch_dim / s), and the growth of the
    process's peak resident memory during the timed calls (an upper bound on the extra
    memory the matching needs).
    """
    import skimage.data

    from .imageio import to_tensor
    from .resize import down_up, imresize, modcrop, upscale
    from .swap import SWAP_SCALES, match, swap
    from .vgg import load_vgg19

    photo = skimage.data.stereo_motorcycle()
    left, right = photo[0], photo[1]
    scale_to = max(width / left.shape[1], height / left.shape[0])
    left = imresize(left, scale_to)[:height, :width]
    right = imresize(right, scale_to)[:height, :width]
    hr, ref = modcrop(left, 4), modcrop(right, 4)
    lr = imresize(hr, 0.25)
    vgg = load_vgg19(tuple(SWAP_SCALES), weights=vgg_weights)
    with torch.no_grad():
        content = vgg(to_tensor(upscale(lr, 4)))["relu3_1"][0]
        cand = vgg(to_tensor(down_up(ref, 4)))["relu3_1"][0]
        ref_feats = vgg(to_tensor(ref))
    base = _peak_rss_mb()
    t_match, t_swap = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        corr = match(content, [cand], max_mb=max_mb)
        t1 = time.perf_counter()
        swap(corr, [{k: v[0] for k, v in ref_feats.items()}], out_hw=tuple(hr.shape[:2]), max_mb=max_mb)
        t2 = time.perf_counter()
        t_match.append(t1 - t0)
        t_swap.append(t2 - t1)
    c, h, w = content.shape
    n_ref = (cand.shape[1] - 2) * (cand.shape[2] - 2)
    flop = 2.0 * h * w * n_ref * c * 9
    med = float(np.median(t_match))
    return {"benchmark": "swap", "hr_size": f"{width}x{height}", "content_positions": h * w,
            "ref_patches": n_ref, "patch_dim": c * 9, "max_mb": max_mb, "repeats": repeats,
            "match_seconds": med, "swap_seconds": float(np.median(t_swap)),
            "seconds": med + float(np.median(t_swap)), "gflop_per_s": flop / med / 1e9,
            "peak_extra_mb": max(0.0, _peak_rss_mb() - base), "threads": torch.get_num_threads(),
            "mean_best_cosine": float(corr.cosine.mean())}

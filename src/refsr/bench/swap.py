"""Feature swapping (matching at relu3_1 + stitching at relu3_1/2_1/1_1): ``refsr bench swap``.

Times the exact and approximate search and the naive full-matrix reference
(:mod:`refsr.matching.naive`) side by side on a real photo pair, and measures each one's
peak memory in a fresh process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import skimage.data
import torch

from refsr.bench.measure import gemm_seconds, median, rss_peak
from refsr.core.errors import RefsrError
from refsr.core.imageio import to_tensor
from refsr.data.resize import down_up, imresize, modcrop, upscale
from refsr.features.vgg import load_vgg19
from refsr.matching import SWAP_SCALES, ApproxConfig, extract_features, match, swap
from refsr.matching.naive import naive_bytes, naive_match, naive_stitch

#: The naive reference runs only where its score matrix and patch matrices fit in this.
NAIVE_MAX_GB = 4.0


def _photo_pair(width: int, height: int):
    """``(hr, ref, lr)``: the two views of scikit-image's stereo motorcycle resized to cover
    ``width x height``, mod-cropped to 4, and the HR's ×1/4 bicubic."""
    photo = skimage.data.stereo_motorcycle()
    left, right = photo[0], photo[1]
    scale_to = max(width / left.shape[1], height / left.shape[0])
    left = imresize(left, scale_to)[:height, :width]
    right = imresize(right, scale_to)[:height, :width]
    hr, ref = modcrop(left, 4), modcrop(right, 4)
    return hr, ref, imresize(hr, 0.25)


def swap_inputs(width: int, height: int, vgg_weights: str | None = None) -> dict:
    """relu3_1 φ(LR↑) and φ(Ref↓↑), and φ(Ref) at the three swap layers, for a real photo pair
    (:func:`_photo_pair`), computed as :func:`refsr.matching.transfer` computes them."""
    hr, ref, lr = _photo_pair(width, height)
    vgg = load_vgg19(tuple(SWAP_SCALES), weights=vgg_weights)
    layers = tuple(SWAP_SCALES)
    content = extract_features(vgg, to_tensor(upscale(lr, 4)), ("relu3_1",))["relu3_1"][0]
    cand = extract_features(vgg, to_tensor(down_up(ref, 4)), ("relu3_1",))["relu3_1"][0]
    ref_feats = {k: v[0] for k, v in extract_features(vgg, to_tensor(ref), layers).items()}
    return {"content": content, "cand": cand, "ref_feats": ref_feats, "out_hw": tuple(hr.shape[:2])}


def _sizes(inputs: dict) -> tuple[int, int, int]:
    c, h, w = inputs["content"].shape
    n_ref = (inputs["cand"].shape[1] - 2) * (inputs["cand"].shape[2] - 2)
    return h * w, n_ref, c * 9


def _run(method: str, inputs: dict, max_mb: float, approx) -> tuple[object, float, float]:
    """One matching + stitching: ``(correspondence, match seconds, stitch seconds)``."""
    t0 = time.perf_counter()
    if method == "naive":
        corr = naive_match(inputs["content"], [inputs["cand"]])
    else:
        corr = match(inputs["content"], [inputs["cand"]], max_mb=max_mb, mode=method, approx=approx)
    t1 = time.perf_counter()
    if method == "naive":
        naive_stitch(corr, inputs["ref_feats"])
    else:
        swap(corr, [inputs["ref_feats"]], out_hw=inputs["out_hw"], max_mb=max_mb)
    return corr, t1 - t0, time.perf_counter() - t1


def _peak_child(path: str, method: str, max_mb: float, approx_json: str) -> None:
    """Subprocess entry: load the inputs, warm up, then measure match and stitch peaks."""
    inputs = torch.load(path, weights_only=False)
    approx = json.loads(approx_json)
    small = {"content": inputs["content"][:, :6, :6], "cand": inputs["cand"][:, :6, :6],
             "ref_feats": {k: v[:, :6 * SWAP_SCALES[k], :6 * SWAP_SCALES[k]] for k, v in inputs["ref_feats"].items()},
             "out_hw": tuple(4 * d for d in inputs["content"][:, :6, :6].shape[1:])}  # 6x6 or less
    _run(method, small, max_mb, approx)  # library initialisation is not the method's memory
    if method == "naive":
        with rss_peak() as m:
            corr = naive_match(inputs["content"], [inputs["cand"]])
        with rss_peak() as s:
            naive_stitch(corr, inputs["ref_feats"])
    else:
        with rss_peak() as m:
            corr = match(inputs["content"], [inputs["cand"]], max_mb=max_mb, mode=method, approx=approx)
        with rss_peak() as s:
            swap(corr, [inputs["ref_feats"]], out_hw=inputs["out_hw"], max_mb=max_mb)
    print(json.dumps({"match_peak_mb": m["mb"], "stitch_peak_mb": s["mb"]}))


def measure_peaks(inputs_path: str, method: str, max_mb: float, approx=None, timeout: float = 900) -> dict:
    """Peak extra memory of one matching and one stitching, in a fresh process."""
    cmd = [sys.executable, "-c", "import sys; from refsr.bench.swap import _peak_child; _peak_child(*sys.argv[1:3], "
           "float(sys.argv[3]), sys.argv[4])", inputs_path, method, str(max_mb), json.dumps(approx)]
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RefsrError("bench", f"memory measurement of {method} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_swap(width: int, height: int, max_mb: float = 256, repeats: int = 3, vgg_weights: str | None = None,
               mode: str = "exact", compare: bool = False, approx=None, memory: bool = True,
               naive_max_gb: float = NAIVE_MAX_GB, naive_repeats: int = 1, gemm_n: int = 4096,
               warmup: bool = True) -> dict:
    """Time matching + stitching (medians of ``repeats``), one JSON-able dict.

    Top-level keys describe ``mode`` (``seconds``, ``match_seconds``, ``stitch_seconds`` —
    also as ``swap_seconds`` —, ``gflop_per_s``, ``peak_extra_mb`` of the matching,
    ``stitch_peak_extra_mb``, ``stitch_fraction``, mean S*/cosine) and the GEMM reference
    (``gemm_gflop_per_s``, ``gemm_fraction``). With ``compare`` the other mode and the naive
    reference (when :func:`naive_bytes` is within ``naive_max_gb``) are measured in the same
    loop and reported under their names with their ratios to ``mode``.
    """
    if mode not in ("exact", "approximate"):
        raise RefsrError("--mode", f"must be exact or approximate, got {mode!r}")
    approx_cfg = ApproxConfig.from_any(approx)
    approx_dict = {f: getattr(approx_cfg, f) for f in approx_cfg.__dataclass_fields__}
    inputs = swap_inputs(width, height, vgg_weights)
    n_c, n_r, dim = _sizes(inputs)
    flop = 2.0 * n_c * n_r * dim
    methods = [mode]
    if compare:
        methods.append("approximate" if mode == "exact" else "exact")
        if naive_bytes(n_c, n_r, dim) <= naive_max_gb * 2**30:
            methods.append("naive")
    a, b = torch.randn(gemm_n, gemm_n), torch.randn(gemm_n, gemm_n)
    gemm_seconds(a=a, b=b)  # warm-up
    for method in methods if warmup else ():  # warm-up runs, not timed
        _run(method, inputs, max_mb, approx_dict)
    times: dict[str, dict[str, list]] = {m: {"match": [], "stitch": []} for m in methods}
    corrs, gemm = {}, []
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    for rep in range(repeats):
        gemm.append(gemm_seconds(a=a, b=b))
        for method in methods:
            if method == "naive" and rep >= naive_repeats:
                continue
            corrs[method], tm, ts = _run(method, inputs, max_mb, approx_dict)
            times[method]["match"].append(tm)
            times[method]["stitch"].append(ts)
    del a, b
    gemm_gflops = 2.0 * gemm_n**3 / median(gemm) / 1e9

    peaks = {}
    if memory:
        with tempfile.TemporaryDirectory(prefix="refsr-bench-") as tmp:
            path = str(Path(tmp) / "inputs.pt")
            torch.save(inputs, path)
            for method in methods:
                peaks[method] = measure_peaks(path, method, max_mb, approx_dict)

    def summary(method: str) -> dict:
        tm, ts = median(times[method]["match"]), median(times[method]["stitch"])
        corr = corrs[method]
        out = {"match_seconds": tm, "stitch_seconds": ts, "swap_seconds": ts, "seconds": tm + ts,
               "gflop_per_s": flop / tm / 1e9, "stitch_fraction": ts / (tm + ts),
               "mean_score": float(corr.score.mean()), "repeats": len(times[method]["match"])}
        if corr.cosine is not None:
            out["mean_best_cosine"] = float(corr.cosine.mean())
        if method in peaks:
            out["peak_extra_mb"] = peaks[method]["match_peak_mb"]
            out["stitch_peak_extra_mb"] = peaks[method]["stitch_peak_mb"]
        return out

    main = summary(mode)
    result = {"benchmark": "swap", "hr_size": f"{width}x{height}", "content_positions": n_c, "ref_patches": n_r,
              "patch_dim": dim, "gflop": flop / 1e9, "max_mb": max_mb, "mode": mode, "repeats": repeats,
              "threads": torch.get_num_threads(), "device": "cpu", **main,
              "gemm_n": gemm_n, "gemm_gflop_per_s": gemm_gflops, "gemm_fraction": main["gflop_per_s"] / gemm_gflops,
              "load_average": [load_before, os.getloadavg()[0]] if load_before is not None else None}
    if "peak_extra_mb" not in main:  # no subprocess: the process's peak growth (an upper bound)
        result["peak_extra_mb"] = None
    if "approximate" in methods or mode == "approximate":
        result["approx_config"] = approx_dict
    for method in methods[1:]:
        other = summary(method)
        other["speedup"] = main["seconds"] / other["seconds"]
        other["match_speedup"] = main["match_seconds"] / other["match_seconds"]
        other["score_ratio"] = other["mean_score"] / main["mean_score"]
        other["index_agreement"] = float((corrs[method].index == corrs[mode].index).float().mean())
        result[method] = other
    return result

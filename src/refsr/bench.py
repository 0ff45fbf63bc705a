"""Benchmarks behind ``refsr bench`` and ``make bench``.

``refsr bench swap`` times SRNTT's feature swapping (matching at relu3_1 + stitching at
relu3_1/relu2_1/relu1_1) on a real photo pair at a CUFED5-like size and prints one JSON
line; ``--compare`` adds, measured side by side in the same process (interleaved repeats,
medians), the approximate mode, the naive full-matrix reference (where it fits in memory)
and the machine's fp32 GEMM throughput (``torch.matmul`` of two 4096² matrices).

``refsr bench all`` (``make bench``) runs the suite — swapping at several sizes, training
iterations per second per model at the default and the paper network sizes, inference
seconds per image, the ``snakemake -n`` DAG build time of a CUFED5-sized configuration
and, when a trained SRNTT and the embedded test set are there, the PSNR change of the
approximate mode — writes ``results/bench/*.json`` and regenerates the table in
``BENCHMARKS.md``.

Definitions. ``gflop_per_s``: nominal patch-level work ``2 N_content N_ref (9 C)`` over the
matching seconds (so algorithms that do less work than that score higher than a GEMM).
``peak_extra_mb``: the highest resident memory above the level just before the call,
sampled every millisecond in a fresh process that holds only the inputs (so earlier
measurements cannot hide or inflate it).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import RefsrError

SIZES = ("160x160", "500x332", "1000x1000")
NAIVE_MAX_GB = 4.0  # the naive reference runs only where its score matrix and patches fit in this
MARK_BEGIN, MARK_END = "<!-- bench:begin -->", "<!-- bench:end -->"


def parse_size(text: str) -> tuple[int, int]:
    """``"500x332"`` -> ``(500, 332)`` (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise RefsrError("--hr-size", f"expected WIDTHxHEIGHT like 500x332, got {text!r}") from None
    if w < 12 or h < 12:
        raise RefsrError("--hr-size", f"{w}x{h} is smaller than one relu3_1 patch (12x12)")
    return w, h


# ----------------------------------------------------------------------------- measuring


def _rss_mb() -> float:
    """Current resident set size of this process (MB)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: the peak so far is the best available
        return _peak_rss_mb()


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0


@contextmanager
def rss_peak(interval: float = 0.001):
    """``with rss_peak() as peak: ...``; afterwards ``peak["mb"]`` is the highest resident
    memory above the level at entry, sampled every ``interval`` seconds in a thread."""
    out = {"mb": 0.0}
    base = _rss_mb()
    stop = threading.Event()
    top = [base]

    def sample():
        while not stop.is_set():
            top[0] = max(top[0], _rss_mb())
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()
        out["mb"] = max(0.0, max(top[0], _rss_mb()) - base)


def gemm_seconds(n: int = 4096, a: torch.Tensor | None = None, b: torch.Tensor | None = None) -> float:
    """Seconds of one fp32 ``n x n`` matmul (operands reused when given)."""
    a = torch.randn(n, n) if a is None else a
    b = torch.randn(n, n) if b is None else b
    t0 = time.perf_counter()
    torch.matmul(a, b)
    return time.perf_counter() - t0


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def machine_info() -> dict:
    """CPU, cores, threads, torch build: what the numbers depend on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None}
    try:
        info["memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return info


# ----------------------------------------------------------------------------- swap inputs


def swap_inputs(width: int, height: int, vgg_weights: str | None = None) -> dict:
    """relu3_1 φ(LR↑) and φ(Ref↓↑), and φ(Ref) at the three swap layers, for a real photo pair
    (the two views of scikit-image's stereo motorcycle, resized to cover ``width x height``),
    computed as :func:`refsr.swap.transfer` computes them (channels-last)."""
    import skimage.data

    from .imageio import to_tensor
    from .resize import down_up, imresize, modcrop, upscale
    from .swap import SWAP_SCALES, _features
    from .vgg import load_vgg19

    photo = skimage.data.stereo_motorcycle()
    left, right = photo[0], photo[1]
    scale_to = max(width / left.shape[1], height / left.shape[0])
    left = imresize(left, scale_to)[:height, :width]
    right = imresize(right, scale_to)[:height, :width]
    hr, ref = modcrop(left, 4), modcrop(right, 4)
    lr = imresize(hr, 0.25)
    vgg = load_vgg19(tuple(SWAP_SCALES), weights=vgg_weights)
    layers = tuple(SWAP_SCALES)
    content = _features(vgg, to_tensor(upscale(lr, 4)), ("relu3_1",))["relu3_1"][0]
    cand = _features(vgg, to_tensor(down_up(ref, 4)), ("relu3_1",))["relu3_1"][0]
    ref_feats = {k: v[0] for k, v in _features(vgg, to_tensor(ref), layers).items()}
    return {"content": content, "cand": cand, "ref_feats": ref_feats, "out_hw": tuple(hr.shape[:2])}


def _sizes(inputs: dict) -> tuple[int, int, int]:
    c, h, w = inputs["content"].shape
    n_ref = (inputs["cand"].shape[1] - 2) * (inputs["cand"].shape[2] - 2)
    return h * w, n_ref, c * 9


def naive_bytes(n_content: int, n_ref: int, patch_dim: int) -> int:
    """Memory of the naive reference: the full score matrix and both patch matrices."""
    return 4 * (n_content * n_ref + (n_content + n_ref) * patch_dim)


def naive_match(content: torch.Tensor, cand: torch.Tensor, patch: int = 3):
    """The textbook implementation: every patch vector, the full ``N_content x N_ref`` score matrix."""
    from .swap import EPS, Correspondence

    C, H, W = content.shape
    cp = F.unfold(content[None].contiguous(), patch, padding=patch // 2)[0]
    rp = F.unfold(cand[None].contiguous(), patch)[0]
    rp = rp / rp.norm(dim=0).clamp_min(EPS)
    score, index = (cp.T @ rp).max(dim=1)
    return Correspondence(index=index.view(H, W), score=score.view(H, W),
                          ref_shapes=((int(cand.shape[1]), int(cand.shape[2])),), patch=patch)


def naive_stitch(corr, ref_feats: dict, out_hw: tuple[int, int]) -> dict:
    """The textbook stitching: gather every (p*s)² patch, ``F.fold`` them, divide by the overlap count."""
    from .swap import SWAP_SCALES

    H, W = corr.index.shape
    p, r = corr.patch, corr.patch // 2
    gy, gx = corr.grid_pos
    out = {}
    for layer, s in SWAP_SCALES.items():
        m = ref_feats[layer].contiguous()
        C, k = m.shape[0], p * s
        d = torch.arange(k)
        start = (gy * s * m.shape[2] + gx * s).reshape(1, -1)
        idx = start + (d[:, None] * m.shape[2] + d[None, :]).reshape(-1, 1)
        cols = m.reshape(C, -1)[:, idx].reshape(1, C * k * k, -1)
        size = ((H + 2 * r) * s, (W + 2 * r) * s)
        acc = F.fold(cols, size, kernel_size=k, stride=s)
        cnt = F.fold(torch.ones(1, k * k, H * W), size, kernel_size=k, stride=s)
        crop = (..., slice(r * s, (r + H) * s), slice(r * s, (r + W) * s))
        out[layer] = acc[crop] / cnt[crop]
    return out


def _run(method: str, inputs: dict, max_mb: float, approx) -> tuple[object, float, float]:
    """One matching + stitching: ``(correspondence, match seconds, stitch seconds)``."""
    from .swap import match, swap

    t0 = time.perf_counter()
    if method == "naive":
        corr = naive_match(inputs["content"], inputs["cand"])
    else:
        corr = match(inputs["content"], [inputs["cand"]], max_mb=max_mb, mode=method, approx=approx)
    t1 = time.perf_counter()
    if method == "naive":
        naive_stitch(corr, inputs["ref_feats"], inputs["out_hw"])
    else:
        swap(corr, [inputs["ref_feats"]], out_hw=inputs["out_hw"], max_mb=max_mb)
    return corr, t1 - t0, time.perf_counter() - t1


def _peak_child(path: str, method: str, max_mb: float, approx_json: str) -> None:
    """Subprocess entry: load the inputs, warm up, then measure match and stitch peaks."""
    from .swap import SWAP_SCALES, match, swap

    inputs = torch.load(path, weights_only=False)
    approx = json.loads(approx_json)
    small = {"content": inputs["content"][:, :6, :6], "cand": inputs["cand"][:, :6, :6],
             "ref_feats": {k: v[:, :6 * SWAP_SCALES[k], :6 * SWAP_SCALES[k]] for k, v in inputs["ref_feats"].items()},
             "out_hw": (24, 24)}
    _run(method, small, max_mb, approx)  # library initialisation is not the method's memory
    if method == "naive":
        with rss_peak() as m:
            corr = naive_match(inputs["content"], inputs["cand"])
        with rss_peak() as s:
            naive_stitch(corr, inputs["ref_feats"], inputs["out_hw"])
    else:
        with rss_peak() as m:
            corr = match(inputs["content"], [inputs["cand"]], max_mb=max_mb, mode=method, approx=approx)
        with rss_peak() as s:
            swap(corr, [inputs["ref_feats"]], out_hw=inputs["out_hw"], max_mb=max_mb)
    print(json.dumps({"match_peak_mb": m["mb"], "stitch_peak_mb": s["mb"]}))


def measure_peaks(inputs_path: str, method: str, max_mb: float, approx=None, timeout: float = 900) -> dict:
    """Peak extra memory of one matching and one stitching, in a fresh process."""
    cmd = [sys.executable, "-c", "import sys; from refsr.bench import _peak_child; _peak_child(*sys.argv[1:3], "
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
    from .approx import ApproxConfig

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
    gemm_gflops = 2.0 * gemm_n**3 / _median(gemm) / 1e9

    peaks = {}
    if memory:
        with tempfile.TemporaryDirectory(prefix="refsr-bench-") as tmp:
            path = str(Path(tmp) / "inputs.pt")
            torch.save(inputs, path)
            for method in methods:
                peaks[method] = measure_peaks(path, method, max_mb, approx_dict)

    def summary(method: str) -> dict:
        tm, ts = _median(times[method]["match"]), _median(times[method]["stitch"])
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


# ----------------------------------------------------------------------------- training


PAPER_ARCH = {"n_blocks": 16, "n_feats": 64, "n_blocks_transfer": [16, 8, 4]}
PAPER_DISC = {"n_feats": 64, "n_down": 4, "n_hidden": 100}
TRAIN_MODELS = ("srresnet", "srgan", "srntt_l2", "srntt")


def _config(path: str | os.PathLike = "config.yaml") -> dict:
    """The pipeline config (``config.yaml`` when there), schema defaults of the keys used here."""
    import yaml

    cfg = {}
    if Path(path).is_file():
        with open(path) as fh:
            cfg = yaml.safe_load(fh) or {}
    arch = {"n_blocks": 16, "n_feats": 64, "n_blocks_transfer": [16, 8, 4], **(cfg.get("arch") or {})}
    disc = {**PAPER_DISC, **(cfg.get("discriminator") or {})}
    loss = dict(cfg.get("loss") or {})
    train = cfg.get("train") or {}
    return {"arch": arch, "disc": disc, "loss": loss, "batch_size": int(train.get("batch_size", 16)),
            "tile": int((cfg.get("inference") or {}).get("tile", 128))}


def _parent_checkpoint(model: str, arch: dict, folder: Path) -> str | None:
    from .models import build_model, save_checkpoint
    from .train import INIT_FROM

    if model not in INIT_FROM:
        return None
    parent = INIT_FROM[model][0]
    a = dict(arch) if parent.startswith("srntt") else {k: v for k, v in arch.items() if k != "n_blocks_transfer"}
    path = folder / f"{parent}-{abs(hash(json.dumps(a, sort_keys=True)))}.pt"
    if not path.exists():
        torch.manual_seed(0)
        save_checkpoint(path, build_model(parent, a), parent, a)
    return str(path)


def _train_data(root: Path, vgg_weights: str | None, pairs: int = 16, size: int = 96) -> dict:
    """A small embedded training set (``pairs`` pairs of ``size`` px) with LR and correspondences."""
    from .datasets import build_to
    from .datasets.lr import write_lr
    from .train_data import build_correspondence_cache
    from .vgg import load_vgg19

    cfg = dict(kind="embedded", test_photos=["astronaut"], train_photos=["brick", "retina", "hubble_deep_field"],
               hr_size=size, train_size=size, train_pairs=pairs, seed=0)
    ds = build_to("bench", cfg, root / "ds", 4)
    write_lr(ds, root / "ds" / "lr")
    vgg = load_vgg19(("relu3_1",), weights=vgg_weights)
    t0 = time.perf_counter()
    build_correspondence_cache(ds, root / "ds" / "lr", root / "corr", vgg)
    return {"ds": ds, "lr": root / "ds" / "lr", "corr": root / "corr",
            "cache_seconds_per_pair": (time.perf_counter() - t0) / pairs}


def bench_train(iterations: int = 3, warmup: int = 1, vgg_weights: str | None = None, config: str = "config.yaml",
                sizes: tuple[str, ...] = ("default", "paper"), models: tuple[str, ...] = TRAIN_MODELS,
                size: int = 96) -> dict:
    """Training iterations per second per model (``warmup`` untimed iterations first)."""
    from .train import Trainer
    from .train_config import TrainConfig
    from .train_data import TrainingSet

    cfg = _config(config)
    rows = []
    with tempfile.TemporaryDirectory(prefix="refsr-bench-train-") as tmp:
        tmp = Path(tmp)
        data = _train_data(tmp, vgg_weights, pairs=max(cfg["batch_size"], 8), size=size)
        for which in sizes:
            arch, disc = (cfg["arch"], cfg["disc"]) if which == "default" else (PAPER_ARCH, PAPER_DISC)
            for model in models:
                a = dict(arch) if model.startswith("srntt") else {k: v for k, v in arch.items()
                                                                 if k != "n_blocks_transfer"}
                tc = TrainConfig(model=model, arch=a, loss=cfg["loss"], iterations=warmup + iterations,
                                 batch_size=cfg["batch_size"], disc=disc, checkpoint_every=10**9, log_every=10**9)
                corr = data["corr"] if model.startswith("srntt") else None
                trainer = Trainer(tc, TrainingSet(data["ds"], data["lr"], corr), tmp / f"state-{model}.pt",
                                  init_ckpt=_parent_checkpoint(model, arch, tmp), vgg_weights=vgg_weights)
                stamps = []
                trainer.run(on_iteration=lambda _it, s=stamps: s.append(time.perf_counter()))
                steps = np.diff(stamps[warmup - 1:]) if warmup >= 1 else np.diff(stamps)
                rows.append({"model": model, "size": which, "arch": a, "batch_size": cfg["batch_size"],
                             "patch_px": size, "iterations": len(steps),
                             "seconds_per_it": float(np.median(steps)), "it_per_s": float(1 / np.median(steps))})
    return {"benchmark": "train", "threads": torch.get_num_threads(),
            "cache_seconds_per_pair": data["cache_seconds_per_pair"], "rows": rows}


# ----------------------------------------------------------------------------- inference


def bench_infer(hr_size: str = "500x332", repeats: int = 2, vgg_weights: str | None = None,
                config: str = "config.yaml", sizes: tuple[str, ...] = ("default", "paper")) -> dict:
    """Seconds per image of :class:`refsr.infer.SuperResolver` for every model (untrained
    weights of the given sizes: the timing does not depend on them), SRNTT in both modes."""
    import skimage.data

    from .infer import SuperResolver
    from .models import build_model, save_checkpoint
    from .resize import imresize

    cfg = _config(config)
    width, height = parse_size(hr_size)
    photo = skimage.data.stereo_motorcycle()
    s = max(width / photo[0].shape[1], height / photo[0].shape[0])
    hr = imresize(photo[0], s)[:height - height % 4, :width - width % 4]
    ref = imresize(photo[1], s)[:height, :width]
    lr = imresize(hr, 0.25)
    rows = []
    with tempfile.TemporaryDirectory(prefix="refsr-bench-infer-") as tmp:
        runs = [("bicubic", "-", None, "exact")]
        for which in sizes:
            arch = cfg["arch"] if which == "default" else PAPER_ARCH
            for model in ("srresnet", "srntt"):
                a = dict(arch) if model == "srntt" else {k: v for k, v in arch.items() if k != "n_blocks_transfer"}
                path = Path(tmp) / f"{model}-{which}.pt"
                torch.manual_seed(0)
                save_checkpoint(path, build_model(model, a), model, a)
                for mode in (("exact", "approximate") if model == "srntt" else ("exact",)):
                    runs.append((model, which, str(path), mode))
        for model, which, ckpt, mode in runs:
            resolver = SuperResolver(ckpt if ckpt else "bicubic", model=model, vgg_weights=vgg_weights,
                                     tile=cfg["tile"], match_mode=mode)
            refs = [ref] if resolver.uses_reference else []
            resolver(lr, refs)  # warm-up
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                resolver(lr, refs)
                ts.append(time.perf_counter() - t0)
            rows.append({"model": model, "size": which, "match_mode": mode if model == "srntt" else None,
                         "seconds": _median(ts), "repeats": repeats})
    note = "srgan and srntt_l2 share the srresnet and srntt networks: same inference time"
    return {"benchmark": "infer", "hr_size": f"{width}x{height}", "lr_size": f"{lr.shape[1]}x{lr.shape[0]}",
            "tile": cfg["tile"], "threads": torch.get_num_threads(), "note": note, "rows": rows}


# ----------------------------------------------------------------------------- snakemake DAG


def bench_dag(groups: int = 126, repeats: int = 2, snakefile: str = "workflow/Snakefile") -> dict:
    """Seconds of ``snakemake -n`` on a CUFED5-sized configuration (``groups`` test groups,
    all five models, seven evaluation levels) over a fake CUFED5 folder of tiny images."""
    from PIL import Image

    from .datasets.layout import EVAL_LEVELS
    from .infer import MODELS

    exe = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
    with tempfile.TemporaryDirectory(prefix="refsr-bench-dag-") as tmp:
        tmp = Path(tmp)
        test_dir, train_dir = tmp / "CUFED5", tmp / "CUFED"
        test_dir.mkdir()
        img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8))
        for g in range(groups):
            for k in range(6):
                img.save(test_dir / f"{g:03d}_{k}.png")
        for sub in ("input", "ref"):
            (train_dir / sub).mkdir(parents=True)
            for i in range(4):
                img.save(train_dir / sub / f"{i:05d}.png")
        cfg = {"datasets": {"cufed5": {"kind": "cufed5", "test_dir": str(test_dir), "train_dir": str(train_dir)}},
               "train_dataset": "cufed5", "eval_datasets": ["cufed5"], "models": list(MODELS)}
        cfg_path = tmp / "config.yaml"
        cfg_path.write_text(json.dumps(cfg))
        cmd = [exe, "-n", "-s", str(Path(snakefile).resolve()), "-d", str(tmp / "work"),
               "--configfile", str(cfg_path), "--cores", "1"]
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            ts.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                raise RefsrError("bench dag", f"snakemake -n failed: {' | '.join(tail)}")
    jobs = None
    for line in proc.stdout.splitlines():
        if line.strip().startswith("total"):
            try:
                jobs = int(line.split()[-1])
            except ValueError:
                pass
    return {"benchmark": "dag", "groups": groups, "models": len(MODELS), "levels": len(EVAL_LEVELS),
            "jobs": jobs, "seconds": _median(ts), "repeats": repeats}


# ----------------------------------------------------------------------------- approximate-mode quality


def bench_approx_quality(results: str = "results", dataset: str = "embedded", vgg_weights: str | None = None,
                         approx=None) -> dict:
    """PSNR of the trained SRNTT with exact vs approximate matching on every test group at L1..L5."""
    from .datasets import read_manifest
    from .datasets.layout import LEVELS
    from .datasets.lr import lr_path
    from .imageio import read_image
    from .infer import SuperResolver, level_references
    from .metrics import psnr
    from .resize import modcrop

    root = Path(results)
    ckpt = root / "models" / "srntt" / "checkpoint.pt"
    manifest = root / "data" / dataset / "manifest.csv"
    tiers_csv = root / "tiers" / f"{dataset}.csv"
    missing = [str(p) for p in (ckpt, manifest, tiers_csv) if not p.is_file()]
    if missing:
        return {"benchmark": "approx_quality", "skipped": f"missing {', '.join(missing)}"}
    import pandas as pd

    ds = read_manifest(manifest, dataset)
    tiers = pd.read_csv(tiers_csv, keep_default_na=False, dtype={"group": str, "ref": str})
    refs_by_level = level_references(ds, tiers)
    exact = SuperResolver(str(ckpt), model="srntt", vgg_weights=vgg_weights, tile=0, match_mode="exact")
    from .approx import ApproxConfig

    fast_cfg = ApproxConfig.from_any(approx)
    fast = SuperResolver(str(ckpt), model="srntt", vgg_weights=vgg_weights, tile=0, match_mode="approximate",
                         approx=fast_cfg)
    rows = []
    for g in ds.groups:
        lr = read_image(lr_path(root / "data" / dataset / "lr", "test", g.name))
        hr = modcrop(read_image(g.hr), 4)
        for level in LEVELS:
            paths = refs_by_level[g.name].get(level, [])
            if not paths:
                continue
            refs = [read_image(p) for p in paths]
            a, b = psnr(exact(lr, refs), hr), psnr(fast(lr, refs), hr)
            rows.append({"group": g.name, "level": level, "psnr_exact": a, "psnr_approx": b, "delta": b - a})
    deltas = [r["delta"] for r in rows]
    per_level = {lv: float(np.mean([r["delta"] for r in rows if r["level"] == lv]))
                 for lv in LEVELS if any(r["level"] == lv for r in rows)}
    return {"benchmark": "approx_quality", "dataset": dataset, "checkpoint": str(ckpt), "images": len(rows),
            "approx_config": {f: getattr(fast_cfg, f) for f in fast_cfg.__dataclass_fields__},
            "mean_delta_db_per_level": per_level,
            "mean_psnr_exact": float(np.mean([r["psnr_exact"] for r in rows])),
            "mean_psnr_approx": float(np.mean([r["psnr_approx"] for r in rows])),
            "mean_delta_db": float(np.mean(deltas)), "max_abs_delta_db": float(np.max(np.abs(deltas))),
            "rows": rows}


# ----------------------------------------------------------------------------- the suite


def bench_all(out_dir: str = "results/bench", markdown: str | None = "BENCHMARKS.md", quick: bool = False,
              vgg_weights: str | None = None, log=print) -> dict:
    """Run the suite, write ``out_dir/*.json`` and regenerate ``markdown``'s table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine_info()}
    sizes = ("160x160",) if quick else SIZES
    big = {"1000x1000"}  # an exact run takes about half a minute here: one timed run, no warm-up
    steps = [(f"swap_{size}", lambda size=size: bench_swap(
        *parse_size(size), repeats=1 if size in big else (2 if quick else 5), compare=True, vgg_weights=vgg_weights,
        naive_repeats=1 if size != "160x160" else 3, warmup=size not in big)) for size in sizes]
    steps += [("train", lambda: bench_train(iterations=1 if quick else 3, vgg_weights=vgg_weights,
                                            sizes=("default",) if quick else ("default", "paper"))),
              ("infer", lambda: bench_infer("160x160" if quick else "500x332", repeats=1 if quick else 2,
                                            vgg_weights=vgg_weights,
                                            sizes=("default",) if quick else ("default", "paper"))),
              ("dag", lambda: bench_dag(groups=8 if quick else 126, repeats=1 if quick else 2)),
              ("approx_quality", lambda: bench_approx_quality(vgg_weights=vgg_weights))]
    _write_json(out / "machine.json", results["machine"])
    for name, fn in steps:
        t0 = time.perf_counter()
        log(f"bench {name} ...")
        try:
            res = fn()
        except RefsrError as err:
            res = {"benchmark": name, "error": str(err)}
        res["wall_seconds"] = time.perf_counter() - t0
        results[name] = res
        _write_json(out / f"{name}.json", res)
        log(f"bench {name}: {res['wall_seconds']:.1f} s")
    if markdown:
        update_markdown(markdown, results)
    return results


def _write_json(path: Path, obj: dict) -> None:
    from .atomic import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=1, default=str) + "\n")


def load_results(out_dir: str | os.PathLike) -> dict:
    """The ``*.json`` files of a suite run, by name."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(Path(out_dir).glob("*.json"))}


# ----------------------------------------------------------------------------- markdown


def _f(x, digits: int = 2, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}{unit}"


def _targets(results: dict) -> list[str]:
    """Issue 6's targets against this run (CPU, 500x332 unless stated)."""
    r, big, q = results.get("swap_500x332"), results.get("swap_1000x1000"), results.get("approx_quality")
    if not r or "error" in r:
        return []

    def mark(ok: bool | None) -> str:
        return "–" if ok is None else ("met" if ok else "**not met**")

    a = r.get("approximate") or {}
    peak, peak_big = r.get("peak_extra_mb"), (big or {}).get("peak_extra_mb")
    dq = None if not q or "mean_delta_db" not in q else q["mean_delta_db"]
    rows = [("exact search throughput vs fp32 GEMM (same run)", "≥ 80 %",
             _f(r["gemm_fraction"] * 100, 0, " %"), r["gemm_fraction"] >= 0.8),
            ("exact search peak extra memory, 500x332 / 1000x1000", "≤ 300 MB",
             f"{_f(peak, 0)} / {_f(peak_big, 0)} MB",
             None if peak is None or peak_big is None else max(peak, peak_big) <= 300),
            ("approximate matching speed-up vs exact (end-to-end swap in brackets)", "≥ 10×",
             f"{_f(a.get('match_speedup'), 1, '×')} ({_f(a.get('speedup'), 1, '×')})",
             None if not a else a["match_speedup"] >= 10),
            ("approximate mean S* vs exact", "≥ 99 %", _f(a.get("score_ratio", float("nan")) * 100, 2, " %"),
             None if not a else a["score_ratio"] >= 0.99),
            ("approximate: SRNTT mean PSNR change, embedded test set L1..L5", "≤ 0.05 dB",
             _f(dq, 3, " dB"), None if dq is None else abs(dq) <= 0.05),
            ("stitching share of the (exact) swap time", "≤ 5 %", _f(r["stitch_fraction"] * 100, 1, " %"),
             r["stitch_fraction"] <= 0.05)]
    out = ["### Issue 6 targets in this run", "", "| target | wanted | measured | |", "|---|---|---:|---|"]
    out += [f"| {name} | {want} | {got} | {mark(ok)} |" for name, want, got, ok in rows]
    return out + [""]


def render_table(results: dict) -> str:
    """The BENCHMARKS.md tables (markdown) from a suite's results."""
    m = results.get("machine", {})
    lines = [f"Measured on: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('threads', '?')} torch "
             f"threads, {m.get('memory_gb', '?')} GB RAM, torch {m.get('torch', '?')}; load average at start "
             f"{m.get('load_average', '?')}. Medians; seconds are wall-clock.", ""]
    lines += _targets(results)
    lines += ["### Feature swapping (match at relu3_1 + stitch at relu3_1/2_1/1_1), CPU", "",
              "| HR size | method | match s | stitch s | total s | GFLOP/s (nominal) | vs fp32 GEMM | "
              "match peak MB | stitch peak MB | stitch share | mean S* vs exact | speed-up vs exact |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for size in SIZES:
        r = results.get(f"swap_{size}")
        if not r or "error" in r:
            if r:
                lines.append(f"| {size} | error: {r['error']} | | | | | | | | | | |")
            continue
        gemm = r["gemm_gflop_per_s"]
        for method in ("exact", "approximate", "naive"):
            x = r if r["mode"] == method else r.get(method)
            if x is None:
                if method == "naive":
                    need = naive_bytes(r["content_positions"], r["ref_patches"], r["patch_dim"]) / 2**30
                    lines.append(f"| {size} | naive full matrix | skipped: needs {need:.1f} GB | | | | | | | | | |")
                continue
            ratio = 1.0 if x is r else x.get("score_ratio")
            speed = 1.0 if x is r else x.get("speedup")
            lines.append(
                f"| {size} | {method if method != 'naive' else 'naive full matrix'} | {_f(x['match_seconds'], 3)} | "
                f"{_f(x['stitch_seconds'], 3)} | {_f(x['seconds'], 3)} | {_f(x['gflop_per_s'], 0)} | "
                f"{_f(x['gflop_per_s'] / gemm * 100, 0, ' %')} | {_f(x.get('peak_extra_mb'), 0)} | "
                f"{_f(x.get('stitch_peak_extra_mb'), 0)} | {_f(x['stitch_fraction'] * 100, 1, ' %')} | "
                f"{_f(ratio * 100 if ratio is not None else None, 2, ' %')} | {_f(speed, 1, '×')} |")
        lines.append(f"| {size} | *fp32 GEMM 4096² (same run)* | | | | {_f(gemm, 0)} | 100 % | | | | | |")
    lines += ["| any | GPU (TF32/bf16), exact and approximate | not yet measured | | | | | | | | | |"]

    q = results.get("approx_quality")
    if q:
        lines += ["", "### Approximate matching: SRNTT PSNR on the embedded test set (L1..L5)", ""]
        if "skipped" in q or "error" in q:
            lines.append(f"Not measured: {q.get('skipped') or q.get('error')}.")
        else:
            levels = q.get("mean_delta_db_per_level", {})
            lines += ["| images | mean PSNR exact | mean PSNR approximate | mean change | change per level "
                      f"({', '.join(levels)}) | largest change on one image |",
                      "|---:|---:|---:|---:|---:|---:|",
                      f"| {q['images']} | {_f(q['mean_psnr_exact'], 3)} dB | {_f(q['mean_psnr_approx'], 3)} dB | "
                      f"{_f(q['mean_delta_db'], 3, ' dB')} | {', '.join(_f(v, 3) for v in levels.values())} dB | "
                      f"{_f(q['max_abs_delta_db'], 3)} dB |"]

    t = results.get("train")
    if t and "rows" in t:
        lines += ["", f"### Training, CPU (batch {t['rows'][0]['batch_size']} of {t['rows'][0]['patch_px']} px "
                      "patches; median of timed iterations after one warm-up)", "",
                  "| model | network | it/s | s/it |", "|---|---|---:|---:|"]
        for row in t["rows"]:
            a = row["arch"]
            net = f"{row['size']}: {a.get('n_blocks')} blocks, {a.get('n_feats')} ch" + (
                f", transfer {a['n_blocks_transfer']}" if "n_blocks_transfer" in a else "")
            lines.append(f"| {row['model']} | {net} | {_f(row['it_per_s'], 2)} | {_f(row['seconds_per_it'], 2)} |")
        lines.append(f"| correspondence cache | relu3_1 matching per pair | | "
                     f"{_f(t['cache_seconds_per_pair'], 3)} |")
        lines.append("| all models | GPU | not yet measured | |")
    elif t:
        lines += ["", f"Training benchmark failed: {t.get('error')}"]

    i = results.get("infer")
    if i and "rows" in i:
        lines += ["", f"### Inference, CPU (HR {i['hr_size']}, LR {i['lr_size']}, one reference, "
                      f"tile {i['tile']}; {i['note']})", "",
                  "| model | network | matching | s / image |", "|---|---|---|---:|"]
        for row in i["rows"]:
            lines.append(f"| {row['model']} | {row['size']} | {row['match_mode'] or '–'} | {_f(row['seconds'], 3)} |")
        lines.append("| all models | GPU | | not yet measured |")

    d = results.get("dag")
    if d:
        lines += ["", "### Workflow", "", "| what | seconds |", "|---|---:|"]
        if "error" in d:
            lines.append(f"| snakemake -n | error: {d['error']} |")
        else:
            lines.append(f"| `snakemake -n`, CUFED5-sized config ({d['groups']} groups, {d['models']} models, "
                         f"{d['levels']} levels{', ' + str(d['jobs']) + ' jobs' if d.get('jobs') else ''}) | "
                         f"{_f(d['seconds'], 2)} |")
    return "\n".join(lines) + "\n"


def update_markdown(path: str | os.PathLike, results: dict) -> None:
    """Replace the text between the bench markers of ``path`` (created if missing) with the tables."""
    from .atomic import atomic_path

    path = Path(path)
    text = path.read_text() if path.is_file() else f"# Benchmarks\n\n{MARK_BEGIN}\n{MARK_END}\n"
    if MARK_BEGIN not in text or MARK_END not in text:
        text = text.rstrip("\n") + f"\n\n{MARK_BEGIN}\n{MARK_END}\n"
    head, rest = text.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(f"{head}{MARK_BEGIN}\n<!-- generated by `make bench` (refsr bench all); "
                             f"do not edit by hand -->\n\n{render_table(results)}\n{MARK_END}{tail}")

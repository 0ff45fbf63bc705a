"""``refsr bench cufed5``: how long the full CUFED5 evaluation of the released models takes here.

A CUFED5-shaped set is cut from the embedded photographs (:mod:`refsr.data.embedded`): groups
of a 500x332 HR (every fourth one 332x500) and five references at CUFED5's sizes (L1..L4 views
of the same photograph, L5 another one). Paper-size networks of ``srntt_l2`` and ``srntt`` (the
released SRNTT's layout, recipe official) and ``ttsr_rec`` and ``ttsr`` (the released TTSR's)
get random weights (the time does not depend on them). The real ``infer`` stage
(:func:`refsr.stages.infer.run_inference`) then runs on a sample of groups at all nine levels:

* *before* (unless ``before=False``, run first): each model on its own with nothing kept and
  the C library's ``malloc`` defaults, in float32, as every job did before;
* *after*: the four models in one pass sharing one feature cache (what a level or a model has
  computed for a group's images is reused: φ(LR↑), each reference's search and features, the
  swapped maps of ``srntt_l2`` for ``srntt``), with freed memory kept in the process
  (:mod:`refsr.core.heap`) and the network pass in ``dtype``; its outputs are compared with
  *before*'s value by value.

The evaluation stage (:func:`refsr.evaluation.results.evaluate_model`: PSNR, SSIM, ST-LPIPS;
LPIPS is NaN offline and costs nothing then) is timed on the outputs. The figures are
extrapolated to CUFED5's 126 groups. Optionally the released TTSR code (a checkout of
researchmm/TTSR given by path, imported at run time, never copied) runs its own forward on the
same images with one reference, beside ours.
"""

from __future__ import annotations

import importlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from refsr.bench.config import bench_config, sized
from refsr.bench.measure import machine_info
from refsr.core.errors import RefsrError
from refsr.core.heap import keep_freed_memory
from refsr.core.imageio import read_image, write_image
from refsr.data.cufed5 import N_GROUPS
from refsr.data.embedded import load_photo
from refsr.data.layout import EVAL_LEVELS, LEVELS, Dataset, TestGroup, write_manifest
from refsr.data.lr import lr_path
from refsr.data.resize import degrade
from refsr.evaluation.protocol import protocol_from_config
from refsr.evaluation.results import evaluate_model
from refsr.evaluation.stlpips import STLPIPSMetric
from refsr.inference.resolver import SuperResolver
from refsr.models import registry
from refsr.models.checkpoint import build_model, save_checkpoint
from refsr.similarity.tiers import COLUMNS as TIER_COLUMNS
from refsr.similarity.tiers import write_tiers
from refsr.stages.infer import run_inference

#: The four models of the issue's goal: the released SRNTT's and TTSR's, each with and without
#: its perceptual losses (the same networks; the losses change only the weights).
MODELS = ("srntt_l2", "srntt", "ttsr_rec", "ttsr")
#: Photographs the groups are cut from (colour ones; L5 of a group is the next one's).
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle", "immunohistochemistry")
#: CUFED5's reference sizes (width x height), cycled over L1..L5; none over 500 (ALL_STITCHED).
REF_SIZES = ((500, 332), (500, 333), (332, 500), (500, 375), (500, 281))


def _window(photo: np.ndarray, w: int, h: int, rng: np.random.RandomState, zoom: float = 1.0) -> np.ndarray:
    """A ``w x h`` window of ``photo`` (upscaled first where it is too small), covering ``zoom``
    times the pixels of the output."""
    from PIL import Image

    ph, pw = photo.shape[:2]
    cw, ch = int(round(w * zoom)), int(round(h * zoom))
    s = max(cw / pw, ch / ph) * 1.25
    if s > 1:
        ph, pw = int(ph * s), int(pw * s)
        photo = np.asarray(Image.fromarray(photo).resize((pw, ph), Image.BICUBIC))
    y, x = rng.randint(0, ph - ch + 1), rng.randint(0, pw - cw + 1)
    crop = photo[y:y + ch, x:x + cw]
    return crop if (cw, ch) == (w, h) else np.asarray(Image.fromarray(crop).resize((w, h), Image.BICUBIC))


def build_set(root: Path, n_groups: int, seed: int = 0, size_scale: float = 1.0) -> tuple[Dataset, Path, Path]:
    """The first ``n_groups`` groups of the CUFED5-shaped set under ``root``: the dataset,
    its LR folder and its tiers CSV (reference ``i`` at level ``L{i}``, used). ``size_scale``
    shrinks every image (tests)."""

    def sized(w: int, h: int) -> tuple[int, int]:
        return max(16, int(w * size_scale)), max(16, int(h * size_scale))

    photos = {name: load_photo(name) for name in PHOTOS}
    ds = Dataset("cufed5_bench", root)
    rows = []
    for i in range(n_groups):
        rng = np.random.RandomState(seed + i)
        name, other = PHOTOS[i % len(PHOTOS)], PHOTOS[(i + 1) % len(PHOTOS)]
        w, h = sized(*((332, 500) if i % 4 == 3 else (500, 332)))
        hr = _window(photos[name], w, h, rng)
        g = TestGroup(f"{i:03d}", hr=root / "images" / f"{i:03d}_0.png")
        write_image(g.hr, hr)
        for k, level in enumerate(LEVELS):
            rw, rh = sized(*REF_SIZES[(i + k) % len(REF_SIZES)])
            src = photos[other] if level == "L5" else photos[name]
            ref = _window(src, rw, rh, rng, zoom=1.0 + 0.25 * k)
            ref_id = str(k + 1)
            g.refs[ref_id] = root / "images" / f"{i:03d}_{ref_id}.png"
            g.levels[ref_id] = level
            write_image(g.refs[ref_id], ref)
            rows.append({"group": g.name, "ref": ref_id, "level": level, "local_inliers": 0,
                         "vgg_cosine": 0.0, "combined": 0.0, "tier": level, "used": True})
        write_image(lr_path(root / "lr", "test", g.name), degrade(hr)[1])
        ds.groups.append(g)
    write_manifest(ds, root / "manifest.csv")
    tiers = root / "tiers.csv"
    write_tiers(pd.DataFrame(rows, columns=list(TIER_COLUMNS)), tiers)
    return ds, root / "lr", tiers


def paper_checkpoints(out: Path, models: tuple[str, ...] = MODELS, config: str | os.PathLike = "config.yaml") -> dict:
    """Random-weight checkpoints at the paper's sizes in the released layouts (recipe
    official): model -> path."""
    cfg = sized(bench_config(config), "paper")
    cfg["recipe"] = "official"
    paths = {}
    for model in models:
        spec = registry.spec_for(model, cfg)
        arch = registry.arch_config(model, cfg)
        torch.manual_seed(0)
        net = build_model(model, arch, recipe=spec.recipe)
        paths[model] = out / f"{model}.pt"
        save_checkpoint(paths[model], net, model, arch, recipe=spec.recipe)
    return paths


def _per_level(times: list[tuple[str, str, str, float]]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], list[float]] = {}
    for model, _, level, s in times:
        out.setdefault((model, level), []).append(s)
    return {k: statistics.mean(v) for k, v in out.items()}


def compare_outputs(a: Path, b: Path) -> dict:
    """Values that differ between two SR folders of the same images: how many, the largest
    difference, and the pixels off by more than one grey level."""
    n = diff = over1 = 0
    worst = 0
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    for rel in files:
        x, y = read_image(a / rel).astype(np.int16), read_image(b / rel).astype(np.int16)
        d = np.abs(x - y)
        n += d.size
        diff += int((d > 0).sum())
        over1 += int((d > 1).any(axis=-1).sum())
        worst = max(worst, int(d.max()))
    return {"images_compared": len(files), "values": n, "differing_values": diff,
            "max_abs_diff": worst, "pixels_off_by_more_than_1": over1}


@contextmanager
def _imported(path: Path):
    """The released TTSR checkout's ``model`` and ``utils`` modules importable, offline (its
    LTE asks torchvision for pretrained VGG19 weights: an untrained one instead, replaced by
    ours right after)."""
    import torchvision.models as tvm

    saved_path, saved_vgg = list(sys.path), tvm.vgg19
    clash = {k: sys.modules.pop(k) for k in list(sys.modules) if k in ("model", "utils") or k.startswith("model.")}
    sys.path.insert(0, str(path))
    tvm.vgg19 = lambda *a, **k: saved_vgg(weights=None)
    try:
        yield importlib.import_module("model.TTSR")
    finally:
        sys.path[:] = saved_path
        tvm.vgg19 = saved_vgg
        for k in [k for k in list(sys.modules) if k in ("model", "utils") or k.startswith("model.")]:
            del sys.modules[k]
        sys.modules.update(clash)


def released_ttsr(path: str | os.PathLike, ckpt: Path, ds: Dataset, lr_dir: Path, repeats: int = 1) -> dict:
    """Seconds per image of the released TTSR forward (its own code, from the checkout at
    ``path``) on each group's LR with its L1 reference, prepared as its test path does (PIL
    bicubic, [-1, 1]), with the weights of ``ckpt``."""
    from argparse import Namespace

    from PIL import Image

    path = Path(path)
    if not (path / "model" / "TTSR.py").is_file():
        raise RefsrError(path, "not a researchmm/TTSR checkout (no model/TTSR.py)")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    with _imported(path) as mod:
        net = mod.TTSR(Namespace(num_res_blocks="16+16+8+4", n_feats=64, res_scale=1.0)).eval()
    missing, unexpected = net.load_state_dict(state["state_dict"], strict=False)
    if unexpected or [k for k in missing if not k.startswith("LTE_copy.")]:
        raise RefsrError(ckpt, f"released TTSR layout mismatch: missing {missing[:3]}, unexpected {unexpected[:3]}")

    def t(img: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(img.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]

    ts = []
    for g in ds.groups:
        lr = read_image(lr_path(lr_dir, "test", g.name))
        ref = read_image(g.refs["1"])
        h, w = lr.shape[:2]
        ref = ref[: ref.shape[0] // 4 * 4, : ref.shape[1] // 4 * 4]
        lrsr = np.array(Image.fromarray(lr).resize((w * 4, h * 4), Image.BICUBIC))
        rh, rw = ref.shape[:2]
        refsr = Image.fromarray(ref).resize((rw // 4, rh // 4), Image.BICUBIC).resize((rw, rh), Image.BICUBIC)
        inputs = dict(lr=t(lr), lrsr=t(lrsr), ref=t(ref), refsr=t(np.array(refsr)))
        with torch.no_grad():
            for _ in range(repeats):
                t0 = time.perf_counter()
                net(**inputs)
                ts.append(time.perf_counter() - t0)
    return {"seconds_per_image": statistics.median(ts), "images": len(ts), "level": "L1",
            "note": "the released model's forward (LTE, full relevance matrix, MainNet), one reference"}


def bench_cufed5(groups: int = 2, models: tuple[str, ...] | None = None, before: bool = True,
                 released_ttsr_path: str | os.PathLike | None = None, config: str | os.PathLike = "config.yaml",
                 workdir: str | os.PathLike | None = None, log: Callable[[str], None] = lambda msg: None,
                 levels: tuple[str, ...] = EVAL_LEVELS, size_scale: float = 1.0, dtype: str = "fp32") -> list[dict]:
    """The JSON rows: one per model and level (s/image after, and before when timed), then the
    total extrapolated to CUFED5's 126 groups (evaluation included). ``dtype`` is *after*'s
    ``inference.dtype`` (*before* is float32, as every job was before). ``levels`` and
    ``size_scale`` (smaller images) are for tests."""
    if groups < 1 or groups > N_GROUPS:
        raise RefsrError("--groups", f"must be 1..{N_GROUPS}, got {groups}")
    load = list(os.getloadavg())
    models = tuple(models or MODELS)
    unknown = [m for m in models if m not in registry.MODELS]
    if unknown:
        raise RefsrError("--model", f"unknown model(s) {unknown}")
    cfg = bench_config(config)
    levels = list(levels)
    with tempfile.TemporaryDirectory(prefix="refsr-bench-cufed5-", dir=workdir) as tmp:
        root = Path(tmp)
        log(f"cufed5 bench: building {groups} group(s), load average {load}")
        ds, lr_dir, tiers = build_set(root / "data", groups, size_scale=size_scale)
        ckpts = paper_checkpoints(root / "models", models, config)

        def resolvers(dtype: str = "fp32") -> list[SuperResolver]:
            return [SuperResolver(str(ckpts[m]), model=m, tile=int(cfg["inference"]["tile"]),
                                  pad=int(cfg["inference"]["pad"]), max_mb=float(cfg["matching"]["max_mb"]),
                                  dtype=dtype) for m in models]

        before_times: list = []
        before_wall = None
        if before:  # first, with the C library's malloc as every job had it before
            t0 = time.perf_counter()
            for m, res in zip(models, resolvers(), strict=True):
                log(f"before: {m} on its own, nothing kept")
                run_inference(ds, lr_dir, tiers, res, root / "before" / m, levels, cache_mb=0,
                              on_image=lambda *a: before_times.append(a))
            before_wall = time.perf_counter() - t0
        released, run_released = {}, bool(released_ttsr_path and "ttsr" in models)
        if run_released:  # as its own code runs: the C library's malloc
            log(f"released TTSR from {released_ttsr_path}, malloc defaults")
            released["system"] = released_ttsr(released_ttsr_path, ckpts["ttsr"], ds, lr_dir)
        heap = keep_freed_memory()
        after_times: list = []
        log(f"after: {', '.join(models)} in one pass, shared cache, freed memory kept: {heap}, {dtype}")
        t0 = time.perf_counter()
        run_inference(ds, lr_dir, tiers, resolvers(dtype), [root / "after" / m for m in models], levels,
                      on_image=lambda *a: after_times.append(a))
        after_wall = time.perf_counter() - t0
        log("evaluation (PSNR, SSIM, ST-LPIPS)")
        protocol = protocol_from_config(cfg)
        st = STLPIPSMetric(cfg["evaluation"]["stlpips_net"]) if cfg["evaluation"]["stlpips"] else None
        t0 = time.perf_counter()
        df, _ = evaluate_model(ds, root / "after" / models[0], protocol, None, levels, stlpips_metric=st)
        eval_per_image = (time.perf_counter() - t0) / max(1, len(df))
        same = compare_outputs(root / "before", root / "after") if before else None
        if run_released and heap:
            log(f"released TTSR from {released_ttsr_path}, freed memory kept")
            released["kept"] = released_ttsr(released_ttsr_path, ckpts["ttsr"], ds, lr_dir)
    after, bef = _per_level(after_times), _per_level(before_times)
    rows = []
    for m in models:
        for lv in levels:
            if (m, lv) not in after:
                continue
            row = {"benchmark": "cufed5", "model": m, "level": lv, "seconds_per_image": round(after[(m, lv)], 3)}
            if (m, lv) in bef:
                row["before_seconds_per_image"] = round(bef[(m, lv)], 3)
            rows.append(row)
    n_images = len(after_times)
    scale = N_GROUPS / groups / 60
    total = {"benchmark": "cufed5", "groups": N_GROUPS, "groups_timed": groups, "models": list(models),
             "levels": levels, "images_timed": n_images,
             "total_minutes": round((after_wall + eval_per_image * n_images) * scale, 1),
             "infer_minutes": round(after_wall * scale, 1),
             "eval_seconds_per_image": round(eval_per_image, 3),
             "load_average_start": [round(x, 2) for x in load], "load_average_end": [round(x, 2) for x in os.getloadavg()],
             "threads": torch.get_num_threads(), "after_keeps_freed_memory": heap, "dtype": dtype, "machine": machine_info()}
    if before_wall is not None:
        total["before_total_minutes"] = round((before_wall + eval_per_image * n_images) * scale, 1)
        total["speedup"] = round(before_wall / after_wall, 2)
        total["outputs_vs_before"] = same
    if released:
        ours = [s for m, _, lv, s in after_times if m == "ttsr" and lv == "L1"]
        ours_before = [s for m, _, lv, s in before_times if m == "ttsr" and lv == "L1"]
        system = released.get("system", released.get("kept"))
        total["released_ttsr"] = {**system, "ours_seconds_per_image": round(statistics.mean(ours), 3),
                                  "ours_before_seconds_per_image":
                                      round(statistics.mean(ours_before), 3) if ours_before else None}
        if "kept" in released:
            total["released_ttsr"]["freed_memory_kept_seconds_per_image"] = released["kept"]["seconds_per_image"]
    else:
        total["released_ttsr"] = {"skipped": "no --released-ttsr checkout given" if "ttsr" in models
                                  else "ttsr not among the models"}
    rows.append(total)
    return rows

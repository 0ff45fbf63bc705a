"""Training iterations per second per model, at the config's and at the paper's network sizes."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from refsr.bench.config import bench_config, sized
from refsr.data import build_to
from refsr.data.lr import write_lr
from refsr.features.vgg import load_vgg19
from refsr.matching import MATCH_LAYER
from refsr.models import registry
from refsr.models.checkpoint import build_model, save_checkpoint
from refsr.training.config import config_for
from refsr.training.data import TrainingSet, build_correspondence_cache
from refsr.training.trainer import trainer_class


def _parent_checkpoint(model: str, cfg: dict, folder: Path, size: str) -> str | None:
    """An untrained checkpoint of ``model``'s parent (the timing does not depend on weights)."""
    parent = registry.get(model).parent
    if parent is None:
        return None
    path = folder / f"{parent}-{size}.pt"
    if not path.exists():
        arch = registry.arch_config(parent, cfg)
        torch.manual_seed(0)
        save_checkpoint(path, build_model(parent, arch), parent, arch)
    return str(path)


def _train_data(root: Path, vgg_weights: str | None, pairs: int = 16, size: int = 96) -> dict:
    """A small embedded training set (``pairs`` pairs of ``size`` px) with LR and correspondences."""
    cfg = dict(kind="embedded", test_photos=["astronaut"], train_photos=["brick", "retina", "hubble_deep_field"],
               hr_size=size, train_size=size, train_pairs=pairs, seed=0)
    ds = build_to("bench", cfg, root / "ds", 4)
    write_lr(ds, root / "ds" / "lr")
    vgg = load_vgg19((MATCH_LAYER,), weights=vgg_weights)
    t0 = time.perf_counter()
    build_correspondence_cache(ds, root / "ds" / "lr", root / "corr", vgg)
    return {"ds": ds, "lr": root / "ds" / "lr", "corr": root / "corr",
            "cache_seconds_per_pair": (time.perf_counter() - t0) / pairs}


def bench_train(iterations: int = 3, warmup: int = 1, vgg_weights: str | None = None,
                config: str | os.PathLike = "config.yaml", sizes: tuple[str, ...] = ("default", "paper"),
                models: tuple[str, ...] | None = None, size: int = 96) -> dict:
    """Training iterations per second per model (``warmup`` untimed iterations first)."""
    base = bench_config(config)
    models = tuple(models or registry.trainable())
    batch = int(base["train"]["batch_size"])
    rows = []
    with tempfile.TemporaryDirectory(prefix="refsr-bench-train-") as tmp:
        tmp = Path(tmp)
        data = _train_data(tmp, vgg_weights, pairs=max(batch, 8), size=size)
        for which in sizes:
            cfg = sized(base, which)
            for model in models:
                tc = dataclasses.replace(config_for(model, cfg), iterations=warmup + iterations,
                                         checkpoint_every=10**9, log_every=10**9, device="cpu")
                corr = data["corr"] if registry.get(model).correspondence else None
                trainer = trainer_class(model)(tc, TrainingSet(data["ds"], data["lr"], corr), tmp / f"state-{model}.pt",
                                  init_ckpt=_parent_checkpoint(model, cfg, tmp, which), vgg_weights=vgg_weights)
                stamps = []
                trainer.run(on_iteration=lambda _it, s=stamps: s.append(time.perf_counter()))
                steps = np.diff(stamps[warmup - 1:]) if warmup >= 1 else np.diff(stamps)
                rows.append({"model": model, "size": which, "arch": tc.arch, "batch_size": batch,
                             "patch_px": size, "iterations": len(steps),
                             "seconds_per_it": float(np.median(steps)), "it_per_s": float(1 / np.median(steps))})
    return {"benchmark": "train", "threads": torch.get_num_threads(),
            "cache_seconds_per_pair": data["cache_seconds_per_pair"], "rows": rows}

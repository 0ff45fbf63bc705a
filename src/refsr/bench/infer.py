"""Inference seconds per image of every network (untrained weights of the given sizes: the
timing does not depend on them); reference-based networks with both matching modes."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import skimage.data
import torch

from refsr.bench.config import bench_config, sized
from refsr.bench.measure import median, parse_size
from refsr.data.resize import imresize
from refsr.inference.resolver import BICUBIC, SuperResolver
from refsr.matching import MODES
from refsr.models import registry
from refsr.models.checkpoint import build_model, save_checkpoint


def networks() -> list[str]:
    """One trainable model per distinct network (models sharing one time the same)."""
    seen, out = set(), []
    for name in registry.trainable():
        arch = registry.get(name).architecture
        if arch not in seen:
            seen.add(arch)
            out.append(name)
    return out


def bench_infer(hr_size: str = "500x332", repeats: int = 2, vgg_weights: str | None = None,
                config: str | os.PathLike = "config.yaml", sizes: tuple[str, ...] = ("default", "paper")) -> dict:
    """Seconds per image of :class:`refsr.inference.resolver.SuperResolver` per network."""
    base = bench_config(config)
    tile = int(base["inference"]["tile"])
    width, height = parse_size(hr_size)
    photo = skimage.data.stereo_motorcycle()
    s = max(width / photo[0].shape[1], height / photo[0].shape[0])
    hr = imresize(photo[0], s)[:height - height % 4, :width - width % 4]
    ref = imresize(photo[1], s)[:height, :width]
    lr = imresize(hr, 0.25)
    rows = []
    with tempfile.TemporaryDirectory(prefix="refsr-bench-infer-") as tmp:
        runs = [(BICUBIC, "-", None, "exact")]
        for which in sizes:
            cfg = sized(base, which)
            for model in networks():
                arch = registry.arch_config(model, cfg)
                path = Path(tmp) / f"{model}-{which}.pt"
                torch.manual_seed(0)
                save_checkpoint(path, build_model(model, arch), model, arch)
                modes = MODES if registry.get(model).uses_reference else ("exact",)
                runs += [(model, which, str(path), mode) for mode in modes]
        for model, which, ckpt, mode in runs:
            resolver = SuperResolver(ckpt if ckpt else BICUBIC, model=model, vgg_weights=vgg_weights,
                                     tile=tile, match_mode=mode)
            refs = [ref] if resolver.uses_reference else []
            resolver(lr, refs)  # warm-up
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                resolver(lr, refs)
                ts.append(time.perf_counter() - t0)
            rows.append({"model": model, "size": which,
                         "match_mode": mode if resolver.uses_reference else None,
                         "seconds": median(ts), "repeats": repeats})
    shared = [m for m in registry.trainable() if m not in networks()]
    note = f"{', '.join(shared)} share these networks: same inference time" if shared else ""
    return {"benchmark": "infer", "hr_size": f"{width}x{height}", "lr_size": f"{lr.shape[1]}x{lr.shape[0]}",
            "tile": tile, "threads": torch.get_num_threads(), "note": note, "rows": rows}

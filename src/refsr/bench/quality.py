"""What a faster inference costs in PSNR, on the trained models of a run (``results/models``).

* :func:`bench_approx_quality`: the trained SRNTT with exact vs approximate search;
* :func:`bench_bf16_quality`: every trained model with the network pass in float32 vs under
  bf16 autocast (``inference.dtype``).

Both on every test group of a dataset at L1..L5, PSNR under the default protocol (Y, crop 4).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from refsr.core.imageio import read_image
from refsr.data import read_manifest
from refsr.data.layout import LEVELS
from refsr.data.lr import lr_path
from refsr.data.resize import modcrop
from refsr.evaluation.metrics import psnr
from refsr.inference.levels import level_references
from refsr.inference.resolver import SuperResolver
from refsr.matching import ApproxConfig
from refsr.similarity.tiers import read_tiers

#: Trained models whose bf16 PSNR change is measured (those present in the run).
BF16_MODELS = ("srresnet", "srntt_l2", "srntt", "ttsr_rec", "ttsr")


def _missing(*paths: Path) -> str | None:
    gone = [str(p) for p in paths if not p.is_file()]
    return f"missing {', '.join(gone)}" if gone else None


def _paired_psnr(root: Path, dataset: str, a: Callable, b: Callable, names: tuple[str, str]) -> dict:
    """PSNR of ``a(lr, refs)`` and ``b(lr, refs)`` (``psnr_<name>``, ``mean_psnr_<name>``) on
    every group at L1..L5: the rows, the mean change b - a per level and overall, the largest
    change on one image."""
    na, nb = (f"psnr_{n}" for n in names)
    ds = read_manifest(root / "data" / dataset / "manifest.csv", dataset)
    refs_by_level = level_references(ds, read_tiers(root / "tiers" / f"{dataset}.csv"))
    rows = []
    for g in ds.groups:
        lr = read_image(lr_path(root / "data" / dataset / "lr", "test", g.name))
        hr = modcrop(read_image(g.hr), 4)
        for level in LEVELS:
            paths = refs_by_level[g.name].get(level, [])
            if not paths:
                continue
            refs = [read_image(p) for p in paths]
            pa, pb = psnr(a(lr, refs), hr), psnr(b(lr, refs), hr)
            rows.append({"group": g.name, "level": level, na: pa, nb: pb, "delta": pb - pa})
    deltas = [r["delta"] for r in rows]
    return {"images": len(rows),
            "mean_delta_db_per_level": {lv: float(np.mean([r["delta"] for r in rows if r["level"] == lv]))
                                        for lv in LEVELS if any(r["level"] == lv for r in rows)},
            f"mean_{na}": float(np.mean([r[na] for r in rows])),
            f"mean_{nb}": float(np.mean([r[nb] for r in rows])),
            "mean_delta_db": float(np.mean(deltas)), "max_abs_delta_db": float(np.max(np.abs(deltas))),
            "rows": rows}


def bench_approx_quality(results: str = "results", dataset: str = "embedded", vgg_weights: str | None = None,
                         approx=None) -> dict:
    """PSNR of the trained SRNTT with exact vs approximate matching on every test group at L1..L5."""
    root = Path(results)
    ckpt = root / "models" / "srntt" / "checkpoint.pt"
    gone = _missing(ckpt, root / "data" / dataset / "manifest.csv", root / "tiers" / f"{dataset}.csv")
    if gone:
        return {"benchmark": "approx_quality", "skipped": gone}
    exact = SuperResolver(str(ckpt), model="srntt", vgg_weights=vgg_weights, tile=0, match_mode="exact")
    fast_cfg = ApproxConfig.from_any(approx)
    fast = SuperResolver(str(ckpt), model="srntt", vgg_weights=vgg_weights, tile=0, match_mode="approximate",
                         approx=fast_cfg)
    return {"benchmark": "approx_quality", "dataset": dataset, "checkpoint": str(ckpt),
            "approx_config": {f: getattr(fast_cfg, f) for f in fast_cfg.__dataclass_fields__},
            **_paired_psnr(root, dataset, exact, fast, ("exact", "approx"))}


def bench_bf16_quality(results: str = "results", dataset: str = "embedded", vgg_weights: str | None = None,
                       models: tuple[str, ...] = BF16_MODELS) -> dict:
    """PSNR of every trained model of ``models`` present in the run with ``inference.dtype``
    fp32 vs bf16 (whole image, exact matching) on every test group at L1..L5."""
    root = Path(results)
    gone = _missing(root / "data" / dataset / "manifest.csv", root / "tiers" / f"{dataset}.csv")
    present = [m for m in models if (root / "models" / m / "checkpoint.pt").is_file()]
    if gone or not present:
        return {"benchmark": "bf16_quality", "skipped": gone or f"no trained model of {', '.join(models)}"}
    per_model = {}
    for m in present:
        ckpt = str(root / "models" / m / "checkpoint.pt")
        fp32, bf16 = (SuperResolver(ckpt, model=m, vgg_weights=vgg_weights, tile=0, match_mode="exact", dtype=d)
                      for d in ("fp32", "bf16"))
        out = _paired_psnr(root, dataset, fp32, bf16, ("fp32", "bf16"))
        out.pop("rows")
        per_model[m] = {"checkpoint": ckpt, **out}
    return {"benchmark": "bf16_quality", "dataset": dataset, "models": per_model,
            "max_abs_mean_delta_db_per_level": max(abs(v) for r in per_model.values()
                                                   for v in r["mean_delta_db_per_level"].values())}

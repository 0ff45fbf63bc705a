"""What approximate matching costs in PSNR: the trained SRNTT with exact vs approximate search."""

from __future__ import annotations

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


def bench_approx_quality(results: str = "results", dataset: str = "embedded", vgg_weights: str | None = None,
                         approx=None) -> dict:
    """PSNR of the trained SRNTT with exact vs approximate matching on every test group at L1..L5."""
    root = Path(results)
    ckpt = root / "models" / "srntt" / "checkpoint.pt"
    manifest = root / "data" / dataset / "manifest.csv"
    tiers_csv = root / "tiers" / f"{dataset}.csv"
    missing = [str(p) for p in (ckpt, manifest, tiers_csv) if not p.is_file()]
    if missing:
        return {"benchmark": "approx_quality", "skipped": f"missing {', '.join(missing)}"}
    ds = read_manifest(manifest, dataset)
    tiers = read_tiers(tiers_csv)
    refs_by_level = level_references(ds, tiers)
    exact = SuperResolver(str(ckpt), model="srntt", vgg_weights=vgg_weights, tile=0, match_mode="exact")
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

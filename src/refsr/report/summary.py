"""Per-level means of the evaluation CSVs, and how a table cell shows them.

A cell is the mean over *all* test images of its dataset. When any image has no SR output
for that (model, level) - or, for LPIPS, no value - the mean is **not reported**: the CSV
holds NaN and ``n_missing`` > 0, Markdown shows ``—†`` and LaTeX ``---$^\\dagger$``, and a
footnote says "k of N images missing". LPIPS that could not be computed at all (weights
unavailable, or disabled) is ``n/a``, with the reason in the caption; so is ST-LPIPS when it is
disabled in the config (``evaluation.stlpips: false``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from refsr.data.layout import EVAL_LEVELS
from refsr.evaluation.results import METRICS, read_eval_csv, read_sidecar

LABEL = {"psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS", "stlpips": "ST-LPIPS"}
ARROW = {"psnr": "\u2191", "ssim": "\u2191", "lpips": "\u2193", "stlpips": "\u2193"}
DIGITS = {"psnr": 2, "ssim": 4, "lpips": 4, "stlpips": 4}  # main table
COMPACT_DIGITS = {"psnr": 2, "ssim": 3, "lpips": 3, "stlpips": 3}  # per-level cells

MISSING_MD = "\u2014\u2020"  # em dash + dagger
MISSING_TEX = r"---$^\dagger$"
NA = "n/a"
SUMMARY_COLUMNS = ("dataset", "model", "level", "n_images", "n_missing", *METRICS)


def load_evals(csv_paths: Iterable[str | os.PathLike]) -> tuple[dict, dict]:
    """``results/eval/{dataset}/{model}.csv`` (+ ``.json``) -> {(dataset, model): df / meta}."""
    evals, metas = {}, {}
    for p in csv_paths:
        p = Path(p)
        key = (p.parent.name, p.stem)
        evals[key] = read_eval_csv(p)
        metas[key] = read_sidecar(p.with_suffix(".json"))
    return evals, metas


def summarise(evals: Mapping[tuple[str, str], pd.DataFrame],
              levels: Sequence[str] = EVAL_LEVELS) -> pd.DataFrame:
    """Tidy means: one row per (dataset, model, level).

    ``n_images`` is the number of test images of the dataset (union over its models);
    ``n_missing`` the images without an SR output for that (model, level). A metric's
    mean is NaN unless *every* image has a value; ``{metric}_n`` counts those that do.
    """
    images: dict[str, set[str]] = {}
    for (ds, _), df in evals.items():
        images.setdefault(ds, set()).update(df["image"].astype(str))
    rows = []
    for (ds, model), df in evals.items():
        n = len(images[ds])
        for level in levels:
            part = df[df["level"] == level].drop_duplicates("image")
            scored = part.dropna(subset=["psnr"])
            row: dict[str, Any] = {"dataset": ds, "model": model, "level": level, "n_images": n,
                                   "n_missing": n - len(scored)}
            for m in METRICS:
                vals = part[m].dropna()
                row[f"{m}_n"] = len(vals)
                row[m] = float(vals.mean()) if len(vals) == n and n > 0 else math.nan
            rows.append(row)
    cols = list(SUMMARY_COLUMNS) + [f"{m}_n" for m in METRICS]
    return pd.DataFrame(rows, columns=cols)


def cell_status(row: Mapping[str, Any], metric: str, lpips_available: bool) -> str:
    """``ok`` | ``missing`` (some images lack a value) | ``na`` (LPIPS not computed at all, or
    ST-LPIPS disabled in the config: no value for any image that has an SR output)."""
    if row[f"{metric}_n"] == row["n_images"] and row["n_images"] > 0:
        return "ok"
    if metric == "lpips" and not lpips_available and row["n_missing"] < row["n_images"]:
        return "na"
    if metric == "stlpips" and row["stlpips_n"] == 0 and row["n_missing"] < row["n_images"]:
        return "na"
    return "missing"


def _num(value: float, digits: int) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}f}"


def fmt_cell(row, metric, lpips_available, digits, tex=False) -> str:
    status = cell_status(row, metric, lpips_available)
    if status == "ok":
        return _num(row[metric], digits[metric])
    if status == "na":
        return NA
    return MISSING_TEX if tex else MISSING_MD


def missing_notes(summary: pd.DataFrame, lpips_available: bool,
                  metrics: Sequence[str] = METRICS) -> list[str]:
    """Footnotes for every missing-marked cell of ``metrics``."""
    notes = []
    for row in summary.to_dict("records"):
        where = f"{row['dataset']}, {row['model']}, {row['level']}"
        if row["n_missing"] > 0:
            notes.append(f"\u2020 {where}: {row['n_missing']} of {row['n_images']} images "
                         f"missing (no SR output); mean not reported.")
            continue
        for m in metrics:
            if cell_status(row, m, lpips_available) == "missing":
                k = row["n_images"] - row[f"{m}_n"]
                notes.append(f"\u2020 {where}: {LABEL[m]} missing for {k} of {row['n_images']} "
                             f"images; mean not reported.")
    return notes

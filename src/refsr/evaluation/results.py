"""Scoring one model's SR outputs of one dataset against the HR images, and the result files.

For every test image and every level (L1..L5, LR, HR) the SR written by the
inference stage (``results/sr/{dataset}/{model}/{image}/{level}.png``) is scored
against the mod-cropped HR under one :class:`~refsr.evaluation.protocol.Protocol`.
Two kinds of absent cell are kept apart:

* **structurally absent** — the image has no reference at that level (from the
  tiers table: a folder image with fewer than five candidates, a dataset without
  references). There is nothing to score: the cell has *no row*, and the sidecar
  lists it under ``absent``. Means at that level are over the images that have it.
* **missing** (a failure) — the image has the level but its SR output does not
  exist: a row of NaN, listed under ``missing``; the tables do not report a mean.

Files:

* ``{model}.csv`` — one row per (image, level) the image has, columns exactly
  ``image, level, psnr, ssim, lpips, stlpips``; LPIPS is NaN for every row when its
  AlexNet weights are unavailable (or it is disabled); ST-LPIPS (weights inside its
  package) is computed for every row unless disabled.
* ``{model}.json`` — the sidecar: protocol, LPIPS availability / reason / weight
  source, ST-LPIPS weight source, the missing and the structurally absent (image, level) cells, each
  counted per level.

An SR of another size than the (mod-cropped) HR is an error naming both files, and
so is an SR output at a structurally absent cell (the SR folder and the tiers table
disagree).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from refsr.core.atomic import write_text
from refsr.core.errors import RefsrError
from refsr.core.imageio import read_image
from refsr.core.progress import progress
from refsr.data.layout import EVAL_LEVELS, Dataset
from refsr.data.resize import modcrop
from refsr.evaluation.lpips import LPIPSMetric
from refsr.evaluation.protocol import Protocol
from refsr.evaluation.stlpips import STLPIPSMetric

log = logging.getLogger(__name__)

METRICS = ("psnr", "ssim", "lpips", "stlpips")
COLUMNS = ("image", "level", *METRICS)


def sr_path(sr_dir: str | os.PathLike, image: str, level: str) -> Path:
    """Where the inference stage writes the SR of ``image`` at ``level``."""
    return Path(sr_dir) / image / f"{level}.png"


def _size(a) -> str:
    return f"{a.shape[1]}x{a.shape[0]}"


def evaluate_model(
    ds: Dataset,
    sr_dir: str | os.PathLike,
    protocol: Protocol,
    lpips_metric: LPIPSMetric | None = None,
    levels: Iterable[str] = EVAL_LEVELS,
    absent: Collection[tuple[str, str]] = (),
    stlpips_metric: STLPIPSMetric | None = None,
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Score every (image, level) except the structurally ``absent`` ones (no row); return
    the table and the missing (image, level) cells (no SR output where one should exist)."""
    sr_dir = Path(sr_dir)
    if not sr_dir.is_dir():
        raise RefsrError(sr_dir, "SR folder not found; run the inference stage first")
    levels = list(levels)
    absent = set(absent)
    rows: list[dict[str, Any]] = []
    missing: list[tuple[str, str]] = []
    for g in progress(ds.groups, f"evaluate {sr_dir.name} on {ds.name}", logger=log):
        hr = modcrop(read_image(g.hr), protocol.scale)
        for level in levels:
            path = sr_path(sr_dir, g.name, level)
            if (g.name, level) in absent:
                if path.exists():
                    raise RefsrError(path, f"SR output at {level}, where the tiers table gives "
                                           f"{g.name} no reference; re-run the inference stage")
                continue
            if not path.is_file():
                log.warning("%s: no SR output (%s); its row is NaN and marked missing", path, level)
                missing.append((g.name, level))
                rows.append({"image": g.name, "level": level, **dict.fromkeys(METRICS, math.nan)})
                continue
            sr = read_image(path)
            if sr.shape != hr.shape:
                raise RefsrError(
                    f"{path} vs {g.hr}",
                    f"size mismatch: SR is {_size(sr)} but the HR (mod-cropped to a multiple of "
                    f"{protocol.scale}) is {_size(hr)} (width x height)",
                )
            scores = protocol.score_pair(sr, hr, lpips_metric, stlpips_metric=stlpips_metric,
                                         sr_name=path, hr_name=g.hr)
            rows.append({"image": g.name, "level": level, **scores})
    return pd.DataFrame(rows, columns=list(COLUMNS)), missing


def lpips_info(metric: LPIPSMetric | None, enabled: bool) -> dict[str, Any]:
    """What the sidecar and the table captions say about LPIPS."""
    if not enabled:
        return {"enabled": False, "available": False,
                "reason": "disabled in the config (evaluation.lpips: false)", "source": None}
    if metric is None:
        return {"enabled": True, "available": False, "reason": "no LPIPS metric given",
                "source": None}
    return {"enabled": True, "available": bool(metric.available), "reason": metric.reason,
            "source": metric.source}


def stlpips_info(metric: STLPIPSMetric | None) -> dict[str, Any]:
    """What the sidecar and the captions say about ST-LPIPS."""
    if metric is None:
        return {"enabled": False, "net": None, "source": None}
    info = {"enabled": True, "net": metric.net, "source": metric.source}
    if metric.skipped:  # images too small for ST-LPIPS: NaN, and why
        info.update(skipped=metric.skipped, reason=metric.reason)
    return info


def sidecar(
    df: pd.DataFrame,
    missing: list[tuple[str, str]],
    protocol: Protocol,
    lpips: Mapping[str, Any],
    dataset: str,
    model: str,
    stlpips: Mapping[str, Any],
    absent: Collection[tuple[str, str]] = (),
    levels: Iterable[str] = EVAL_LEVELS,
) -> dict[str, Any]:
    """The JSON written beside the CSV."""
    levels = list(levels)
    absent = sorted(absent, key=lambda c: (c[0], levels.index(c[1]) if c[1] in levels else len(levels)))

    def cells(which):
        return {"count": len(which),
                "by_level": {lv: sum(1 for _, m in which if m == lv) for lv in levels},
                "cells": [[img, lv] for img, lv in which]}

    nan_counts = {m: int(df[m].isna().sum()) for m in METRICS}
    return {
        "dataset": dataset,
        "model": model,
        "images": int(df["image"].nunique()),
        "levels": levels,
        "rows": len(df),
        "protocol": protocol.to_dict(),
        "protocol_text": protocol.describe(),
        "lpips": dict(lpips),
        "stlpips": dict(stlpips),
        "missing": cells(missing),
        "absent": cells(absent),
        "nan": nan_counts,
    }


def write_results(df: pd.DataFrame, meta: Mapping[str, Any], csv_path, json_path) -> None:
    """Write the CSV (NaN as ``nan``, full precision) and the sidecar, each atomically."""
    write_text(csv_path, df.to_csv(index=False, float_format="%.6f", na_rep="nan"))
    write_text(json_path, json.dumps(meta, indent=2, allow_nan=False, default=str) + "\n")


def read_eval_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read an evaluation CSV back, checking its columns."""
    path = Path(path)
    if not path.is_file():
        raise RefsrError(path, "evaluation CSV not found")
    df = pd.read_csv(path, dtype={"image": str, "level": str})
    if tuple(df.columns) != COLUMNS:
        raise RefsrError(path, f"not an evaluation CSV: columns {list(df.columns)}, "
                               f"expected {list(COLUMNS)}")
    return df


def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise RefsrError(path, "evaluation sidecar JSON not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RefsrError(path, f"not valid JSON ({exc})") from None

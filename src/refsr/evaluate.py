"""The evaluation stage: one model's SR outputs of one dataset against the HR images.

For every test image and every level (L1..L5, LR, HR) the SR written by the
inference stage (``results/sr/{dataset}/{model}/{image}/{level}.png``) is scored
against the mod-cropped HR under one :class:`~refsr.metrics.Protocol`:

* ``{model}.csv`` — one row per (image, level), columns exactly
  ``image, level, psnr, ssim, lpips``. A missing SR file gives a row of NaN
  (the row is kept, so the tables can see and mark the missing cell); LPIPS is
  NaN for every row when its AlexNet weights are unavailable (or it is disabled).
* ``{model}.json`` — the sidecar: protocol, LPIPS availability / reason / weight
  source, and the missing (image, level) cells, counted per level.

An SR of another size than the (mod-cropped) HR is an error naming both files.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .atomic import write_text
from .datasets.layout import EVAL_LEVELS, Dataset
from .errors import RefsrError
from .imageio import read_image
from .metrics import LPIPSMetric, Protocol
from .progress import progress
from .resize import modcrop

log = logging.getLogger(__name__)

COLUMNS = ("image", "level", "psnr", "ssim", "lpips")
METRICS = ("psnr", "ssim", "lpips")


def protocol_from_config(config: Mapping[str, Any]) -> Protocol:
    """The evaluation protocol of a pipeline config (``scale``, ``resize``, ``evaluation.*``)."""
    ev = dict(config.get("evaluation") or {})
    return Protocol(
        scale=int(config.get("scale", 4)),
        crop=int(ev.get("crop", 4)),
        y_channel=bool(ev.get("y_channel", True)),
        resize=str(config.get("resize", "matlab")),
        rounding="uint8",  # SR outputs are read back from PNG: always uint8
        round_y=bool(ev.get("round_y", True)),
    )


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
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Score every (image, level); return the table and the missing (image, level) cells."""
    sr_dir = Path(sr_dir)
    if not sr_dir.is_dir():
        raise RefsrError(sr_dir, "SR folder not found; run the inference stage first")
    levels = list(levels)
    rows: list[dict[str, Any]] = []
    missing: list[tuple[str, str]] = []
    for g in progress(ds.groups, f"evaluate {sr_dir.name} on {ds.name}", logger=log):
        hr = modcrop(read_image(g.hr), protocol.scale)
        for level in levels:
            path = sr_path(sr_dir, g.name, level)
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
            scores = protocol.score_pair(sr, hr, lpips_metric, sr_name=path, hr_name=g.hr)
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


def sidecar(
    df: pd.DataFrame,
    missing: list[tuple[str, str]],
    protocol: Protocol,
    lpips: Mapping[str, Any],
    dataset: str,
    model: str,
) -> dict[str, Any]:
    """The JSON written beside the CSV."""
    levels = list(dict.fromkeys(df["level"]))
    by_level = {lv: sum(1 for _, m in missing if m == lv) for lv in levels}
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
        "missing": {
            "count": len(missing),
            "by_level": by_level,
            "cells": [[img, lv] for img, lv in missing],
        },
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


def run_evaluation(
    ds: Dataset,
    sr_dir: str | os.PathLike,
    model: str,
    config: Mapping[str, Any],
    csv_path: str | os.PathLike,
    json_path: str | os.PathLike,
    lpips_metric: LPIPSMetric | None = None,
) -> pd.DataFrame:
    """The evaluate rule: score one model on one dataset, write the CSV and its sidecar.

    One :class:`LPIPSMetric` per job (downloads allowed: offline it fails fast and the
    column is NaN with the reason in the sidecar); ``lpips_metric`` overrides it (tests).
    """
    protocol = protocol_from_config(config)
    ev = dict(config.get("evaluation") or {})
    enabled = bool(ev.get("lpips", True))
    if lpips_metric is None and enabled:
        lpips_metric = LPIPSMetric(weights_path=ev.get("lpips_weights") or None,
                                   device=str(config.get("device", "cpu")), allow_download=True)
    metric = lpips_metric if enabled else None
    info = lpips_info(metric, enabled)
    if info["available"]:
        log.info("LPIPS weights: %s", info["source"])
    else:
        log.warning("LPIPS not computed (NaN): %s", info["reason"])
    log.info("protocol: %s", protocol.describe())
    df, missing = evaluate_model(ds, sr_dir, protocol, metric)
    meta = sidecar(df, missing, protocol, info, ds.name, model)
    write_results(df, meta, csv_path, json_path)
    scored = df.dropna(subset=["psnr"])
    for level, part in scored.groupby("level", sort=False):
        log.info("%s %s: PSNR %.3f dB, SSIM %.4f over %d images", model, level,
                 part["psnr"].mean(), part["ssim"].mean(), len(part))
    if missing:
        log.warning("%d (image, level) cells have no SR output; the tables mark them", len(missing))
    return df

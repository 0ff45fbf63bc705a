"""The same SR images under every protocol preset: how much the protocol alone moves a number.

Published RefSR numbers come from different evaluation codes (:data:`PRESETS`: Y or RGB, rounded
or not, which border crop). The benchmark table shows each method's SR images of the levels the
published comparisons use (:data:`PRESET_LEVELS`: L1, the CUFED5 convention of C2-Matching and
its successors; ALL_STITCHED, SRNTT's and TTSR's) scored under all four presets, PSNR and SSIM
only (the perceptual metrics do not depend on the preset), so a reader sees the spread the
protocol causes before comparing two papers' numbers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

import pandas as pd

from refsr.core.atomic import write_text
from refsr.core.errors import RefsrError
from refsr.data.layout import Dataset
from refsr.evaluation.protocol import PRESETS, resolve_protocol
from refsr.evaluation.results import evaluate_model

#: The levels the published comparisons report (see the module docstring).
PRESET_LEVELS = ("L1", "ALL_STITCHED")
COLUMNS = ("preset", "image", "level", "psnr", "ssim")


def preset_levels(levels: Iterable[str]) -> list[str]:
    """Of :data:`PRESET_LEVELS`, those in ``levels``."""
    levels = list(levels)
    return [lv for lv in PRESET_LEVELS if lv in levels]


def score_presets(ds: Dataset, sr_dir: str | os.PathLike, scale: int, resize: str, levels: Sequence[str],
                  absent: Collection[tuple[str, str]] = ()) -> pd.DataFrame:
    """PSNR and SSIM of every (image, level) of ``levels`` under each preset (columns
    :data:`COLUMNS`); a missing SR output is a NaN row, as in the evaluation CSV."""
    parts = []
    for preset in PRESETS:
        protocol = resolve_protocol(preset, scale, resize)
        df, _ = evaluate_model(ds, sr_dir, protocol, None, levels, absent)
        df.insert(0, "preset", preset)
        parts.append(df[list(COLUMNS)])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(COLUMNS))


def write_presets(df: pd.DataFrame, path: str | os.PathLike) -> None:
    write_text(path, df.to_csv(index=False, float_format="%.6f", na_rep="nan"))


def read_presets(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise RefsrError(path, "preset scores CSV not found; run the rule evaluate_presets")
    df = pd.read_csv(path, dtype={"image": str, "level": str, "preset": str})
    if tuple(df.columns) != COLUMNS:
        raise RefsrError(path, f"not a preset scores CSV: columns {list(df.columns)}, expected {list(COLUMNS)}")
    return df


def summarise_presets(frames: dict[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    """(dataset, model) -> scores, as one row per (dataset, model, preset, level): the mean
    PSNR and SSIM, NaN unless every image of the level has a value, and ``n`` images."""
    rows = []
    for (ds, model), df in frames.items():
        for (preset, level), part in df.groupby(["preset", "level"], sort=False):
            complete = part["psnr"].notna().all() and len(part) > 0
            rows.append({"dataset": ds, "model": model, "preset": preset, "level": level, "n": len(part),
                         "psnr": float(part["psnr"].mean()) if complete else math.nan,
                         "ssim": float(part["ssim"].mean()) if complete else math.nan})
    return pd.DataFrame(rows, columns=["dataset", "model", "preset", "level", "n", "psnr", "ssim"])

"""Which references a test image is super-resolved with at each evaluation level.

``L1``..``L5``: the references the tiers table puts at that level (several allowed: one
multi-reference search); ``LR``: the bicubic-upsampled LR input as its own reference (SRNTT's
SISR mode); ``HR``: the ground truth (oracle).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from refsr.core.imageio import read_image
from refsr.data.layout import LEVELS, Dataset, TestGroup
from refsr.data.resize import upscale


def level_references(ds: Dataset, tiers: pd.DataFrame) -> dict[str, dict[str, list[Path]]]:
    """group -> level -> reference paths, levels L1..L5 from the tiers table (several refs allowed)."""
    out: dict[str, dict[str, list[Path]]] = {g.name: {} for g in ds.groups}
    for row in tiers.itertuples():
        g = ds.group(str(row.group))
        out[g.name].setdefault(str(row.tier), []).append(g.refs[str(row.ref)])
    return out


def read_tiers(path: str | Path) -> pd.DataFrame:
    """The tiers CSV (group and reference names kept as strings)."""
    return pd.read_csv(path, keep_default_na=False, dtype={"group": str, "ref": str})


def level_images(group: TestGroup, level: str, lr: np.ndarray, refs_by_level: dict[str, list[Path]],
                 scale: int, resize: str) -> list[np.ndarray]:
    """The reference images of ``group`` at ``level`` (empty: the group has none there)."""
    if level in LEVELS:
        return [read_image(p) for p in refs_by_level.get(level, [])]
    if level == "LR":
        return [upscale(lr, scale, resize)]  # SISR mode: LR as its own reference
    if level == "HR":
        return [read_image(group.hr)]  # oracle
    raise ValueError(f"unknown evaluation level {level!r}")

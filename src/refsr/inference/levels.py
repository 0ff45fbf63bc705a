"""Which references a test image is super-resolved with at each evaluation level.

``L1``..``L5``: the reference the tiers table marks ``used`` at that level (of several at one
(image, level), the best-scored; see :mod:`refsr.similarity.tiers`); a level without one is
structurally absent for that image and gets no SR output. ``LR``: the bicubic-upsampled LR input
as its own reference (SRNTT's SISR mode); ``HR``: the ground truth (oracle). Every image has LR
and HR.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from refsr.core.errors import RefsrError
from refsr.core.imageio import read_image
from refsr.data.layout import EVAL_LEVELS, LEVELS, Dataset, TestGroup
from refsr.data.resize import upscale


def level_references(ds: Dataset, tiers: pd.DataFrame) -> dict[str, dict[str, list[Path]]]:
    """group -> level -> ``[path]`` of the level's used reference (levels L1..L5 that a group
    has; a group without references maps to ``{}``)."""
    out: dict[str, dict[str, list[Path]]] = {g.name: {} for g in ds.groups}
    for row in tiers[tiers["used"]].itertuples():
        g = ds.group(str(row.group))
        level, ref = str(row.tier), str(row.ref)
        if ref not in g.refs:
            raise RefsrError(ds.root / "manifest.csv", f"the tiers table names reference {ref!r} "
                                                       f"of group {g.name!r}, which it does not have")
        if level in out[g.name]:
            raise RefsrError(f"tiers of {ds.name}", f"group {g.name!r} has two used references "
                                                    f"at {level}")
        out[g.name][level] = [g.refs[ref]]
    return out


def eval_levels(refs_by_level: dict[str, list[Path]]) -> list[str]:
    """The evaluation levels one group has: its L1..L5 with a reference, then LR and HR."""
    return [lv for lv in EVAL_LEVELS if lv not in LEVELS or lv in refs_by_level]


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

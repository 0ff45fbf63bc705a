"""Which references a test image is super-resolved with at each evaluation level.

``L1``..``L5``: the reference the tiers table marks ``used`` at that level (of several at one
(image, level), the best-scored; see :mod:`refsr.similarity.tiers`); a level without one is
structurally absent for that image and gets no SR output. ``ALL``: every reference of the
group in one multi-reference search (the native way to use several references: the best match
over all of them, per patch); ``ALL_STITCHED``: every reference pasted into one image the way
TTSR and SRNTT build their CUFED5 test input (TTSR issue #3: "we put them together as a whole
ref, which is the same setup as SRNTT"): each reference at the top-left of a black 500x500
canvas, the canvases stacked in one column in the dataset's reference order (CUFED5: ``_1`` ..
``_5``), so five references give a 2500x500 image; both are structurally absent for a group
without references. ``LR``: the bicubic-upsampled LR input as its own reference (SRNTT's SISR
mode); ``HR``: the ground truth (oracle). Every image has LR and HR.

A reference larger than 500 px on either side cannot be stitched that way (TTSR's assignment
into the canvas would fail on it); it is refused with a one-line error rather than cropped or
resized silently: drop ``ALL_STITCHED`` from ``evaluation.levels`` for such datasets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from refsr.core.errors import RefsrError
from refsr.core.imageio import read_image
from refsr.data.layout import EVAL_LEVELS, LEVELS, REFERENCE_SETS, Dataset, TestGroup
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


def eval_levels(group: TestGroup, refs_by_level: dict[str, list[Path]],
                levels: Sequence[str] = EVAL_LEVELS) -> list[str]:
    """Those of ``levels`` one group has: its L1..L5 with a reference, ALL and ALL_STITCHED
    when it has any reference, LR and HR always."""
    def has(lv: str) -> bool:
        if lv in LEVELS:
            return lv in refs_by_level
        if lv in REFERENCE_SETS:
            return bool(group.refs)
        return True
    return [lv for lv in levels if has(lv)]


#: Side of the black canvas each reference is pasted into for ``ALL_STITCHED`` (TTSR, SRNTT).
STITCH_SIDE = 500


def stitch_references(refs: list[np.ndarray], paths: list[Path] | None = None,
                      side: int = STITCH_SIDE) -> np.ndarray:
    """``refs`` pasted top-left into black ``side`` x ``side`` canvases stacked in one column."""
    out = np.zeros((side * len(refs), side, 3), dtype=np.uint8)
    for i, ref in enumerate(refs):
        h, w = ref.shape[:2]
        if h > side or w > side:
            where = paths[i] if paths is not None else f"reference {i + 1}"
            raise RefsrError(where, f"reference is {w}x{h}; ALL_STITCHED pastes each reference into a "
                                    f"{side}x{side} canvas as TTSR/SRNTT do and cannot hold it (remove "
                                    f"ALL_STITCHED from evaluation.levels for this dataset)")
        out[i * side:i * side + h, :w] = ref
    return out


def level_images(group: TestGroup, level: str, lr: np.ndarray, refs_by_level: dict[str, list[Path]],
                 scale: int, resize: str) -> list[np.ndarray]:
    """The reference images of ``group`` at ``level`` (empty: the group has none there)."""
    if level in LEVELS:
        return [read_image(p) for p in refs_by_level.get(level, [])]
    if level in REFERENCE_SETS:
        paths = list(group.refs.values())
        refs = [read_image(p) for p in paths]
        if level == "ALL" or not refs:
            return refs
        return [stitch_references(refs, paths)]
    if level == "LR":
        return [upscale(lr, scale, resize)]  # SISR mode: LR as its own reference
    if level == "HR":
        return [read_image(group.hr)]  # oracle
    raise ValueError(f"unknown evaluation level {level!r}")

"""Which references a test image is super-resolved with at each evaluation level.

``L1``..``L5``: the references the tiers table puts at that level (several allowed: one
multi-reference search); ``ALL``: every reference of the group in one multi-reference search
(the native way to use several references: the best match over all of them, per patch);
``ALL_STITCHED``: every reference pasted into one image the way TTSR and SRNTT build their
CUFED5 test input (TTSR issue #3: "we put them together as a whole ref, which is the same setup
as SRNTT"): each reference at the top-left of a black 500x500 canvas, the canvases stacked in
one column in the dataset's reference order (CUFED5: ``_1`` .. ``_5``), so five references give
a 2500x500 image; ``LR``: the bicubic-upsampled LR input as its own reference (SRNTT's SISR
mode); ``HR``: the ground truth (oracle).

A reference larger than 500 px on either side cannot be stitched that way (TTSR's assignment
into the canvas would fail on it); it is refused with a one-line error rather than cropped or
resized silently: drop ``ALL_STITCHED`` from ``evaluation.levels`` for such datasets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from refsr.core.errors import RefsrError
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
    if level in ("ALL", "ALL_STITCHED"):
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

"""Matching accuracy on pairs of known correspondence.

When the reference is a known geometric transform of the content image (a homography ``H``
from content pixel coordinates to reference pixel coordinates), the true match of each relu3_1
content position is known: the cell centre ``((x + 1/2) s, (y + 1/2) s)`` (``s`` = the relu3_1
stride, 4 px) mapped through ``H``, divided by ``s``. :func:`match_accuracy` is the fraction of
content positions whose matched patch centre (:attr:`Correspondence.pos`) lies within
``tolerance`` cells (Chebyshev distance) of the truth, over the positions whose truth falls
inside the reference's relu3_1 map (the others have no correct answer).
"""

from __future__ import annotations

import numpy as np

from refsr.matching.correspondence import Correspondence
from refsr.matching.stitch import RELU3_STRIDE


def true_cells(h: np.ndarray, grid_hw: tuple[int, int], stride: int = RELU3_STRIDE) -> np.ndarray:
    """``Hc x Wc x 2`` (y, x) relu3_1 cells (floats) of the reference that content cells map to."""
    gh, gw = grid_hw
    ys, xs = np.meshgrid((np.arange(gh) + 0.5) * stride, (np.arange(gw) + 0.5) * stride, indexing="ij")
    pts = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)], axis=0)
    q = np.asarray(h, dtype=np.float64) @ pts
    with np.errstate(divide="ignore", invalid="ignore"):
        x, y = q[0] / q[2], q[1] / q[2]
    return np.stack([y / stride, x / stride], axis=-1).reshape(gh, gw, 2)


def inside(truth: np.ndarray, ref_hw: tuple[int, int]) -> np.ndarray:
    """Which cells of :func:`true_cells` fall inside a ``ref_hw`` relu3_1 map."""
    rh, rw = ref_hw
    return np.isfinite(truth).all(-1) & (truth[..., 0] >= 0) & (truth[..., 0] < rh) \
        & (truth[..., 1] >= 0) & (truth[..., 1] < rw)


def match_accuracy(corr: Correspondence, h: np.ndarray, ref: int = 0, tolerance: float = 1.0,
                   mask: np.ndarray | None = None) -> tuple[float, int]:
    """``(fraction correct, positions counted)`` of ``corr`` against the homography ``h``.

    ``h`` maps content (LR↑) pixels to pixels of reference ``ref`` of ``corr``; a position
    matched to another reference counts as wrong. ``mask`` (content cells) restricts the count
    further, e.g. to the cells whose truth lies in the unwarped reference, so that a warped
    reference's empty (black) border is not scored. ``(nan, 0)`` when no truth is inside.
    """
    gh, gw = corr.index.shape
    truth = true_cells(h, (gh, gw))
    valid = inside(truth, corr.ref_shapes[ref])
    if mask is not None:
        valid &= mask
    n = int(valid.sum())
    if n == 0:
        return float("nan"), 0
    py, px = (t.cpu().numpy() for t in corr.pos)
    same = corr.ref_id.cpu().numpy() == ref
    # The matched cell (integer) against the cell holding the true point (floor of the float).
    dy = np.abs(py - np.floor(truth[..., 0]))
    dx = np.abs(px - np.floor(truth[..., 1]))
    ok = same & (np.maximum(dy, dx) <= tolerance) & valid
    return float(ok.sum() / n), n

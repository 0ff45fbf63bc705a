"""Reference pre-alignment (``reference.align``): warp each reference into the input's frame.

``homography``: SIFT (or ORB) keypoints of LR↑ and of the reference, Lowe's ratio test and a
RANSAC homography ``H`` (LR↑ pixel -> reference pixel; the tier code's
:class:`~refsr.similarity.local.LocalFeatureMatcher`), then the reference resampled on the
LR↑ grid (``warpPerspective`` with the inverse map, bilinear, black outside the reference).
The warped image replaces the reference before Ref↓↑ and the patch matching, so the swapped
textures come from a view registered with the input.

A poor fit keeps the unwarped reference (a *fallback*, counted by :class:`AlignStats`): fewer
than ``min_inliers`` RANSAC inliers, no homography at all, or a degenerate ``H``: its local
area change (the Jacobian determinant at the LR↑ corners and centre) outside
``[1/max_scale², max_scale²]`` or of changing sign (a fold), or the LR↑ frame mapped to a
non-convex quadrilateral.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import cv2
import numpy as np

from refsr.core.errors import RefsrError
from refsr.similarity.local import LocalFeatureMatcher

log = logging.getLogger(__name__)

ALIGN_MODES = ("none", "homography")


@dataclass(frozen=True)
class Alignment:
    """The outcome of one alignment: the image to match against and why."""

    image: np.ndarray
    status: str  # "aligned", "identity" (align none) or "fallback: <reason>"
    inliers: int = 0
    homography: np.ndarray | None = None

    @property
    def aligned(self) -> bool:
        return self.status == "aligned"


@dataclass
class AlignStats:
    """Counts of aligned references and of fallbacks (by reason), over a run."""

    counts: Counter = field(default_factory=Counter)

    def add(self, a: Alignment) -> None:
        self.counts["aligned" if a.aligned else ("identity" if a.status == "identity" else "fallback")] += 1
        if a.status.startswith("fallback"):
            self.counts[a.status] += 1

    @property
    def attempted(self) -> int:
        return self.counts["aligned"] + self.counts["fallback"]

    def as_dict(self) -> dict[str, int]:
        return {"attempted": self.attempted, "aligned": self.counts["aligned"],
                "fallback": self.counts["fallback"],
                **{k: v for k, v in sorted(self.counts.items()) if k.startswith("fallback:")}}

    def summary(self) -> str:
        if not self.attempted:
            return "no reference aligned (align none)"
        return (f"{self.counts['aligned']} of {self.attempted} references warped by a homography, "
                f"{self.counts['fallback']} kept unwarped (poor fit)")


def degenerate(h: np.ndarray, width: int, height: int, max_scale: float) -> str | None:
    """Why ``h`` (LR↑ -> reference) is degenerate on a ``width`` x ``height`` frame, or None."""
    if not np.all(np.isfinite(h)) or abs(h[2, 2]) < 1e-12:
        return "non-finite homography"
    h = h / h[2, 2]
    pts = np.array([[0, 0], [width, 0], [width, height], [0, height], [width / 2, height / 2]], float)
    dets = []
    for x, y in pts:
        w = h[2, 0] * x + h[2, 1] * y + 1.0
        if w <= 1e-9:
            return "frame crosses the horizon"
        u = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w
        v = (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w
        jac = np.array([[h[0, 0] - u * h[2, 0], h[0, 1] - u * h[2, 1]],
                        [h[1, 0] - v * h[2, 0], h[1, 1] - v * h[2, 1]]]) / w
        dets.append(np.linalg.det(jac))
    dets = np.array(dets)
    if np.any(dets <= 0):
        return "folding homography"
    if dets.min() < 1 / max_scale**2 or dets.max() > max_scale**2:
        return f"scale change beyond {max_scale:g}x"
    corners = cv2.perspectiveTransform(pts[:4, None].astype(np.float64), h)[:, 0]
    edges = np.roll(corners, -1, axis=0) - corners
    cross = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    if not (np.all(cross > 0) or np.all(cross < 0)):
        return "non-convex frame"
    return None


@dataclass(frozen=True)
class ReferenceAligner:
    """``aligner(lr_up, ref) -> Alignment``; ``mode`` none returns the reference untouched."""

    mode: str = "none"
    min_inliers: int = 15
    max_scale: float = 4.0
    matcher: LocalFeatureMatcher = field(default_factory=LocalFeatureMatcher)

    def __post_init__(self):
        if self.mode not in ALIGN_MODES:
            raise RefsrError("reference.align", f"must be one of {', '.join(ALIGN_MODES)}, got {self.mode!r}")

    def __call__(self, lr_up: np.ndarray, ref: np.ndarray) -> Alignment:
        if self.mode == "none":
            return Alignment(ref, "identity")
        h, inliers = self.matcher.homography(lr_up, ref)
        if h is None:
            return Alignment(ref, "fallback: no homography", inliers)
        if inliers < self.min_inliers:
            return Alignment(ref, f"fallback: fewer than {self.min_inliers} inliers", inliers, h)
        height, width = lr_up.shape[:2]
        why = degenerate(h, width, height, self.max_scale)
        if why is not None:
            return Alignment(ref, f"fallback: {why}", inliers, h)
        warped = cv2.warpPerspective(ref, h, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return Alignment(warped, "aligned", inliers, h)

"""Reference pre-alignment (``reference.align``): warp each reference into the input's frame.

``homography``: SIFT (or ORB) keypoints of LR↑ and of the reference, Lowe's ratio test and a
RANSAC homography ``H`` (LR↑ pixel -> reference pixel; the tier code's
:class:`~refsr.similarity.local.LocalFeatureMatcher`), then the reference resampled on the
LR↑ grid (``warpPerspective`` with the inverse map, bilinear, black outside the reference).
The warped image replaces the reference before Ref↓↑ and the patch matching, so the swapped
textures come from a view registered with the input.

``homography_then_flow``: the homography-warped reference is then refined by dense optical
flow (OpenCV's DIS, preset medium) from LR↑ to the warped reference, each seen at LR↑'s
resolution (the reference bicubic down by ``scale`` and up again, grey), and resampled along
the flow (bilinear). The flow is set to zero where the warped reference has no pixels and
clipped to ``max_flow`` px, so that it corrects what a plane cannot (parallax, lens
distortion, non-planar scenes) without pulling texture from far away. A fallback is not
refined (the unwarped reference stays as it is).

A poor fit keeps the unwarped reference (a *fallback*, counted by :class:`AlignStats`): fewer
than ``min_inliers`` RANSAC inliers, no homography at all, or a degenerate ``H``: its local
area change (the Jacobian determinant at the LR↑ corners and centre) outside
``[1/max_scale², max_scale²]`` or of changing sign (a fold), or the LR↑ frame mapped to a
non-convex quadrilateral.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np

from refsr.core.config import defaults
from refsr.core.errors import RefsrError
from refsr.similarity.local import LocalFeatureMatcher

log = logging.getLogger(__name__)

ALIGN_MODES = ("none", "homography", "homography_then_flow")


@dataclass(frozen=True)
class Alignment:
    """The outcome of one alignment: the image to match against and why."""

    image: np.ndarray
    status: str  # "aligned", "identity" (align none) or "fallback: <reason>"
    inliers: int = 0
    homography: np.ndarray | None = None
    flow_px: float | None = None  # homography_then_flow: median flow magnitude applied (LR↑ px)

    @property
    def aligned(self) -> bool:
        return self.status == "aligned"


@dataclass
class AlignStats:
    """Counts of aligned references and of fallbacks (by reason), over a run."""

    counts: Counter = field(default_factory=Counter)

    def add(self, a: Alignment) -> None:
        self.counts["aligned" if a.aligned else ("identity" if a.status == "identity" else "fallback")] += 1
        if a.flow_px is not None:
            self.counts["flow_refined"] += 1
        if a.status.startswith("fallback"):
            self.counts[a.status] += 1

    @property
    def attempted(self) -> int:
        return self.counts["aligned"] + self.counts["fallback"]

    def as_dict(self) -> dict[str, int]:
        flow = {"flow_refined": self.counts["flow_refined"]} if self.counts["flow_refined"] else {}
        return {"attempted": self.attempted, "aligned": self.counts["aligned"],
                "fallback": self.counts["fallback"], **flow,
                **{k: v for k, v in sorted(self.counts.items()) if k.startswith("fallback:")}}

    def summary(self) -> str:
        if not self.attempted:
            return "no reference aligned (align none)"
        flow = f" (then refined by optical flow: {self.counts['flow_refined']})" if self.counts["flow_refined"] else ""
        return (f"{self.counts['aligned']} of {self.attempted} references warped by a homography{flow}, "
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


def refine_by_flow(lr_up: np.ndarray, warped: np.ndarray, scale: int = 4,
                   max_flow: float = 16.0) -> tuple[np.ndarray, float]:
    """``warped`` resampled along the DIS optical flow from ``lr_up`` to it; returns the refined
    image and the median flow magnitude (px) over the covered pixels."""
    h, w = lr_up.shape[:2]
    small = cv2.resize(warped, (max(1, w // scale), max(1, h // scale)), interpolation=cv2.INTER_AREA)
    blurred = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    g0 = cv2.cvtColor(np.ascontiguousarray(lr_up), cv2.COLOR_RGB2GRAY)
    g1 = cv2.cvtColor(blurred, cv2.COLOR_RGB2GRAY)
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(g0, g1, None)
    covered = warped.max(axis=2) > 0
    flow[~covered] = 0
    mag = np.linalg.norm(flow, axis=2)
    over = mag > max_flow
    flow[over] *= (max_flow / mag[over])[:, None]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    refined = cv2.remap(warped, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return refined, float(np.median(np.minimum(mag, max_flow)[covered])) if covered.any() else 0.0


@dataclass(frozen=True)
class ReferenceAligner:
    """``aligner(lr_up, ref) -> Alignment``; ``mode`` none returns the reference untouched."""

    mode: str = "none"
    min_inliers: int = field(default_factory=lambda: defaults("reference.min_inliers"))
    max_scale: float = field(default_factory=lambda: defaults("reference.max_scale"))
    matcher: LocalFeatureMatcher = field(default_factory=LocalFeatureMatcher)
    # homography_then_flow: the SR scale (the flow compares images at LR↑'s detail)
    scale: int = field(default_factory=lambda: defaults("scale"))
    # homography_then_flow: the largest flow applied, LR↑ px
    max_flow: float = field(default_factory=lambda: defaults("reference.max_flow"))

    @classmethod
    def from_config(cls, reference: Mapping | None, scale: int) -> ReferenceAligner:
        """The aligner of a ``reference`` section as an inference job spec holds it
        (:func:`refsr.pipeline.jobs.reference`: ``align``, and the fit's keys only when it
        aligns: ``min_inliers``, ``max_scale``, ``features``, ``max_flow`` with the flow);
        ``None`` (a model without references) or align none: no alignment."""
        if reference is None or reference["align"] == "none":
            return cls("none")
        flow = {"max_flow": reference["max_flow"]} if reference["align"] == "homography_then_flow" else {}
        return cls(reference["align"], min_inliers=reference["min_inliers"], max_scale=reference["max_scale"],
                   matcher=LocalFeatureMatcher.from_config(reference["features"]), scale=scale, **flow)

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
        if self.mode == "homography_then_flow":
            refined, flow_px = refine_by_flow(lr_up, warped, self.scale, self.max_flow)
            return Alignment(refined, "aligned", inliers, h, flow_px)
        return Alignment(warped, "aligned", inliers, h)

"""Local-feature similarity: keypoints, Lowe's ratio test, a RANSAC homography."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np

from refsr.core.config import defaults
from refsr.core.errors import RefsrError


@dataclass(frozen=True)
class LocalFeatureMatcher:
    """Keypoint matching + RANSAC homography; ``score`` returns the inlier count."""

    kind: str = field(default_factory=lambda: defaults("tiers.local_features"))
    ratio: float = field(default_factory=lambda: defaults("tiers.ratio"))
    ransac_px: float = field(default_factory=lambda: defaults("tiers.ransac_px"))

    @classmethod
    def from_config(cls, section: Mapping) -> LocalFeatureMatcher:
        """From a config section holding ``local_features``, ``ratio`` and ``ransac_px`` (the
        ``tiers`` section, or the ``reference.features`` of an inference job spec)."""
        return cls(section["local_features"], section["ratio"], section["ransac_px"])

    def _detector(self):
        if self.kind == "sift":
            return cv2.SIFT_create(), cv2.NORM_L2
        if self.kind == "orb":
            return cv2.ORB_create(nfeatures=4000), cv2.NORM_HAMMING
        raise RefsrError("tiers.local_features", f"unknown detector {self.kind!r} (sift, orb)")

    def homography(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray | None, int]:
        """RANSAC homography ``H`` mapping pixel coordinates of ``a`` to ``b`` and its inlier count.

        ``H`` is None (0 inliers) when fewer than 4 ratio-test matches survive or RANSAC finds none.
        """
        det, norm = self._detector()
        ka, da = det.detectAndCompute(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), None)
        kb, db = det.detectAndCompute(cv2.cvtColor(b, cv2.COLOR_RGB2GRAY), None)
        if da is None or db is None or len(ka) < 2 or len(kb) < 2:
            return None, 0
        pairs = cv2.BFMatcher(norm).knnMatch(da, db, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < self.ratio * p[1].distance]
        if len(good) < 4:
            return None, 0
        src = np.float32([ka[m.queryIdx].pt for m in good])
        dst = np.float32([kb[m.trainIdx].pt for m in good])
        h, mask = cv2.findHomography(src, dst, cv2.RANSAC, self.ransac_px)
        if h is None or mask is None:
            return None, 0
        return h, int(mask.sum())

    def score(self, a: np.ndarray, b: np.ndarray) -> int:
        return self.homography(a, b)[1]

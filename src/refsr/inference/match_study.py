"""Known-correspondence matching accuracy: does aligning the reference, or matching in the SR
domain, make SRNTT's relu3_1 matches land where they should?

For each test photo of an embedded dataset, the HR window (as the dataset builds it) is matched
against views of the same photo made like the dataset's levels L1..L4
(:data:`refsr.data.embedded.LEVEL_SPECS`: window shift, perspective jitter, scale, photometric
change), each also rotated by every angle of ``match_study.angles``. The view's homography to
the photo is known, hence the true reference position of every relu3_1 content cell
(:mod:`refsr.matching.accuracy`). Four matchings per view:

- ``align`` none | homography: the view as is, or warped into LR↑'s frame by the estimated
  homography (:mod:`refsr.inference.align`; a fallback keeps it unwarped); the truth follows
  the warp (``H_est⁻¹ · H_true``). ``homography_then_flow`` is not studied here: after the
  flow the truth is no longer a homography (its effect on the outputs is the ablation variant
  ``srntt_align_flow``).
- ``degrade`` bicubic | sr_model: content φ(LR↑) against φ(Ref↓↑) (SRNTT's bicubic down and
  up), or content φ(SISR(LR)) against φ(SISR(Ref↓)) with the trained SISR model
  (``match_study.sisr_model``; matching in the SR domain, as the released training script does).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from refsr.core.imageio import to_tensor
from refsr.core.progress import progress
from refsr.data.embedded import (
    LEVEL_SPECS,
    _best_direction,
    _crop,
    _hr_center,
    known_view,
    load_photo,
)
from refsr.data.resize import degrade, down_up, imresize, modcrop, upscale
from refsr.inference.align import ReferenceAligner
from refsr.inference.resolver import SuperResolver
from refsr.matching.accuracy import inside, match_accuracy, true_cells
from refsr.matching.stitch import RELU3_STRIDE
from refsr.matching.transfer import correspond

log = logging.getLogger(__name__)

COLUMNS = ["photo", "level", "angle", "align", "degrade", "accuracy", "n", "align_status"]


def _crop_origin(shape: tuple[int, int], center: np.ndarray, side: int) -> tuple[int, int]:
    """``(x0, y0)`` of :func:`refsr.data.embedded._crop`'s window."""
    h, w = shape
    return (int(np.clip(round(center[1] - side / 2), 0, w - side)),
            int(np.clip(round(center[0] - side / 2), 0, h - side)))


def study_rows(photos: list[str], side: int, angles: list[float], aligner: ReferenceAligner,
               sisr: SuperResolver, vgg, scale: int = 4, resize: str = "matlab", seed: int = 0,
               max_mb: float = 256) -> pd.DataFrame:
    """One row per (photo, level, angle, align, degrade)."""
    rows = []
    homography = ReferenceAligner("homography", aligner.min_inliers, aligner.max_scale, aligner.matcher)
    cells = [(p, lv, a) for p in photos for lv in LEVEL_SPECS for a in angles]
    for i, (pname, level, angle) in enumerate(progress(cells, "match study", logger=log)):
        rng = np.random.RandomState(seed * 1000 + i)
        photo = load_photo(pname)
        center = _hr_center(photo.shape[:2], side)
        hr = modcrop(_crop(photo, center, side), scale)
        x0, y0 = _crop_origin(photo.shape[:2], center, side)
        spec = LEVEL_SPECS[level]
        direction = _best_direction(center, photo.shape[:2], rng)
        view, view_to_photo = known_view(photo, center + direction * spec.shift * side, side, spec, rng, angle)
        h_true = np.linalg.inv(view_to_photo) @ np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], float)
        _, lr = degrade(hr, scale, resize)
        lr_up = upscale(lr, scale, resize)
        sr = sisr(lr)
        grid = tuple(d // RELU3_STRIDE for d in lr_up.shape[:2])
        # Score the same cells for every variant: those whose truth lies in the (unwarped) view.
        common = inside(true_cells(h_true, grid), tuple(d // RELU3_STRIDE for d in view.shape[:2]))
        for align in ("none", "homography"):
            a = homography(lr_up, view) if align == "homography" else ReferenceAligner("none")(lr_up, view)
            ref = a.image
            truth = np.linalg.inv(a.homography) @ h_true if a.aligned else h_true
            for deg in ("bicubic", "sr_model"):
                if deg == "bicubic":
                    content, cand = lr_up, down_up(ref, scale, resize)
                else:
                    content, cand = sr, sisr(imresize(modcrop(ref, scale), 1 / scale, resize))
                corr = correspond(to_tensor(content), [to_tensor(modcrop(ref, scale))], vgg, max_mb=max_mb,
                                  refs_down_up=[to_tensor(cand)])
                acc, n = match_accuracy(corr, truth, mask=common)
                rows.append([pname, level, float(angle), align, deg, acc, n, a.status])
    return pd.DataFrame(rows, columns=COLUMNS)

"""Similarity of (image, reference) pairs, and reference tiers L1..L5.

Two scores per pair, both "higher = more similar":

* ``local_inliers`` — keypoints (SIFT or ORB) of the HR and the reference,
  Lowe's ratio test, then a RANSAC homography; the score is its inlier count.
* ``vgg_cosine`` — the quantity SRNTT's matching maximises: for every relu3_1
  3x3 patch of the bicubic-upsampled LR, the best cosine similarity among the
  patches of the reference's down-up version; averaged over the image.

Datasets with given levels (CUFED5, embedded) keep them: the scores are
reported with their Spearman agreement with the levels. A ``folder`` dataset
gets levels from the scores: the pairs are ranked by the mean of their two
score percentiles and cut into global quintiles, L1 being the most similar.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .datasets.layout import LEVELS, Dataset
from .errors import RefsrError
from .imageio import read_image
from .progress import progress

log = logging.getLogger(__name__)

SCORES = ("local_inliers", "vgg_cosine")
COLUMNS = ("group", "ref", "level", *SCORES, "tier")


@dataclass(frozen=True)
class LocalFeatureMatcher:
    """Keypoint matching + RANSAC homography; ``score`` returns the inlier count."""

    kind: str = "sift"
    ratio: float = 0.75
    ransac_px: float = 5.0

    def _detector(self):
        if self.kind == "sift":
            return cv2.SIFT_create(), cv2.NORM_L2
        if self.kind == "orb":
            return cv2.ORB_create(nfeatures=4000), cv2.NORM_HAMMING
        raise RefsrError("tiers.local_features", f"unknown detector {self.kind!r} (sift, orb)")

    def score(self, a: np.ndarray, b: np.ndarray) -> int:
        det, norm = self._detector()
        ka, da = det.detectAndCompute(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), None)
        kb, db = det.detectAndCompute(cv2.cvtColor(b, cv2.COLOR_RGB2GRAY), None)
        if da is None or db is None or len(ka) < 2 or len(kb) < 2:
            return 0
        pairs = cv2.BFMatcher(norm).knnMatch(da, db, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < self.ratio * p[1].distance]
        if len(good) < 4:
            return 0
        src = np.float32([ka[m.queryIdx].pt for m in good])
        dst = np.float32([kb[m.trainIdx].pt for m in good])
        _, mask = cv2.findHomography(src, dst, cv2.RANSAC, self.ransac_px)
        return int(mask.sum()) if mask is not None else 0


class VGGSimilarity:
    """Mean best-match cosine at relu3_1 between LR-up and Ref-down-up (SRNTT's matching)."""

    def __init__(self, weights: str | None = None, max_mb: int = 256, scale: int = 4,
                 resize: str = "matlab"):
        from .vgg import load_vgg19

        self.vgg = load_vgg19(layers=("relu3_1",), weights=weights)
        self.max_mb, self.scale, self.resize = max_mb, scale, resize

    @property
    def weights_source(self) -> str:
        return self.vgg.weights_source

    def score(self, lr: np.ndarray, ref: np.ndarray) -> float:
        from .imageio import to_tensor
        from .resize import down_up, upscale
        from .swap import correspond

        lr_up = to_tensor(upscale(lr, self.scale, self.resize))
        ref_du = to_tensor(down_up(ref, self.scale, self.resize))
        corr = correspond(lr_up, [to_tensor(ref)], self.vgg, max_mb=self.max_mb, refs_down_up=[ref_du])
        return float(corr.cosine.mean())


def score_dataset(ds: Dataset, lr_images: dict[str, np.ndarray], local: LocalFeatureMatcher,
                  vgg: VGGSimilarity) -> pd.DataFrame:
    """One row per (group, reference) with both scores and the given level (may be empty)."""
    pairs = [(g, rid) for g in ds.groups for rid in g.refs]
    rows = []
    for g, rid in progress(pairs, f"similarity {ds.name}", logger=log):
        hr = read_image(g.hr)
        ref = read_image(g.refs[rid])
        rows.append({
            "group": g.name, "ref": rid, "level": g.levels.get(rid, ""),
            "local_inliers": local.score(hr, ref),
            "vgg_cosine": vgg.score(lr_images[g.name], ref),
        })
    df = pd.DataFrame(rows, columns=list(COLUMNS[:-1]))
    return assign_tiers(df)


def assign_tiers(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``tier``: the given level where every pair has one, else global score quintiles."""
    df = df.copy()
    given = df["level"].fillna("").astype(str)
    if len(df) and (given != "").all():
        df["tier"] = given
        return df
    combined = df[list(SCORES)].rank(pct=True).mean(axis=1)
    # rank 1.0 = most similar -> L1; quintiles of the combined percentile
    order = combined.rank(method="first", ascending=False, pct=True)
    idx = np.minimum((order.to_numpy() * len(LEVELS) - 1e-9).astype(int), len(LEVELS) - 1)
    df["tier"] = [LEVELS[i] for i in idx]
    return df


def level_agreement(df: pd.DataFrame) -> pd.DataFrame:
    """Per score: its mean at each level and Spearman's rho against the level number.

    A score that falls as the level rises (as it should) has a negative rho.
    """
    lv = df["tier"].map({name: i + 1 for i, name in enumerate(LEVELS)})
    out = []
    for s in SCORES:
        rho, p = spearmanr(lv, df[s]) if df[s].nunique() > 1 else (np.nan, np.nan)
        row = {"score": s, "spearman_rho": float(rho), "p_value": float(p)}
        for name in LEVELS:
            row[f"mean_{name}"] = float(df.loc[df["tier"] == name, s].mean())
        out.append(row)
    return pd.DataFrame(out)


def run_tiers(ds: Dataset, lr_dir, outputs: dict, cfg: dict, scale: int, resize: str,
              vgg19_weights: str | None) -> pd.DataFrame:
    """The tiers stage: score every pair, write the CSV, the agreement table and the figure."""
    from .atomic import atomic_path, write_text
    from .datasets.lr import lr_path
    from .report.markdown import markdown_table
    from .report.tier_figure import plot_score_distribution

    local = LocalFeatureMatcher(cfg["local_features"], cfg["ratio"], cfg["ransac_px"])
    vgg = VGGSimilarity(vgg19_weights, cfg["max_mb"], scale, resize)
    lrs = {g.name: read_image(lr_path(lr_dir, "test", g.name)) for g in ds.groups}
    df = score_dataset(ds, lrs, local, vgg)
    agree = level_agreement(df)
    with atomic_path(outputs["csv"]) as tmp:
        df.to_csv(tmp, index=False, float_format="%.5f")
    with atomic_path(outputs["agreement_csv"]) as tmp:
        agree.to_csv(tmp, index=False, float_format="%.5f")
    source = "given by the dataset" if ds.has_levels else "assigned from score quintiles"
    caption = (f"Similarity scores vs reference level on `{ds.name}` ({len(ds.groups)} groups, "
               f"{len(df)} pairs; levels {source}). Spearman rho < 0 means the score falls as the "
               f"level rises. Local features: {cfg['local_features'].upper()}, ratio {cfg['ratio']}, "
               f"RANSAC {cfg['ransac_px']} px. VGG19 weights: {vgg.weights_source}.\n\n")
    write_text(outputs["agreement_md"], caption + markdown_table(agree))
    plot_score_distribution(df, agree, f"{ds.name}: similarity score per reference level",
                            outputs["png"], outputs.get("pdf"))
    for row in agree.itertuples():
        log.info("%s: Spearman rho vs level = %.3f (p = %.2g)", row.score, row.spearman_rho, row.p_value)
    return df

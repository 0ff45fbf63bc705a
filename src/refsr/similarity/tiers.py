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

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from refsr.core.imageio import read_image
from refsr.core.progress import progress
from refsr.data.layout import LEVELS, Dataset
from refsr.similarity.local import LocalFeatureMatcher
from refsr.similarity.vgg_score import VGGSimilarity

log = logging.getLogger(__name__)

SCORES = ("local_inliers", "vgg_cosine")
COLUMNS = ("group", "ref", "level", *SCORES, "tier")


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

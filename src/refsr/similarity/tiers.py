"""Similarity of (image, reference) pairs, and reference tiers L1..L5.

Two scores per pair, both "higher = more similar":

* ``local_inliers`` — keypoints (SIFT or ORB) of the HR and the reference,
  Lowe's ratio test, then a RANSAC homography; the score is its inlier count.
* ``vgg_cosine`` — the quantity SRNTT's matching maximises: for every relu3_1
  3x3 patch of the bicubic-upsampled LR, the best cosine similarity among the
  patches of the reference's down-up version; averaged over the image.

Both are combined into ``combined``, the mean of the pair's two score
percentiles (pandas ``rank(pct=True)``: 1 = the highest score). Where the
percentiles are taken depends on how levels are assigned; the candidates of one
HR image are always ordered by ``combined``, ties broken by ``vgg_cosine``,
then ``local_inliers``, then the reference's name.

Levels (column ``tier``):

* Datasets with given levels (CUFED5, embedded) keep them; the scores are
  reported with their Spearman agreement with the levels (``combined`` is then
  taken within each image).
* Otherwise (a ``folder`` dataset), config ``tiers.assign``:

  ``per_image`` (default)
      Each HR image's candidates, percentiles taken among them, are ranked by
      ``combined``: rank r = 0 (most similar) .. n - 1. The best is always L1
      and, with n >= 2, the worst L5; every other candidate goes to the
      quintile of its rank quantile (r + 1/2) / n (L1 = the first fifth; on a
      boundary, the level nearer L3, so reversing the ranking mirrors the
      levels). So 1 candidate gives L1; 2 give L1, L5; 3 give L1, L3, L5; 4
      give L1, L2, L4, L5; 5 give L1..L5; 7 give L1, L2, L2, L3, L4, L4, L5;
      10 give two per level. With fewer than five candidates some levels are
      *structurally absent* for that image (it has no reference there); with
      more, several share a level.
  ``global``
      All pairs of the dataset, percentiles over all of them, are ranked by
      ``combined`` and cut into global quintiles (L1 = the most similar fifth):
      levels compare absolute similarity across images, but an image may have
      no L1 at all.

One reference per (image, level): where several candidates share a level,
the best-ordered one (highest ``combined``, ties as above) is that level's
reference, marked ``used`` in the tiers CSV; inference uses only it. An image
without any candidate (a dataset with no references) has no rows: all of
L1..L5 are structurally absent for it (:func:`absent_levels`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from refsr.core.atomic import atomic_path
from refsr.core.errors import RefsrError
from refsr.core.imageio import read_image
from refsr.core.progress import progress
from refsr.data.layout import EVAL_LEVELS, LEVELS, REFERENCE_SETS, Dataset

if TYPE_CHECKING:  # the scorers import torch; reading a tiers table needs none (DAG build)
    from refsr.similarity.local import LocalFeatureMatcher
    from refsr.similarity.vgg_score import VGGSimilarity

log = logging.getLogger(__name__)

SCORES = ("local_inliers", "vgg_cosine")
COLUMNS = ("group", "ref", "level", *SCORES, "combined", "tier", "used")
ASSIGN = ("per_image", "global")  # values of config tiers.assign


def score_dataset(ds: Dataset, lr_images: dict[str, np.ndarray], local: LocalFeatureMatcher,
                  vgg: VGGSimilarity, assign: str) -> pd.DataFrame:
    """One row per (group, reference): both scores, the given level (may be empty), the tier."""
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
    df = pd.DataFrame(rows, columns=["group", "ref", "level", *SCORES])
    return assign_tiers(df, assign)


def has_given_levels(df: pd.DataFrame) -> bool:
    """Every pair has a level from the dataset (and there is at least one pair)."""
    given = df["level"].fillna("").astype(str)
    return bool(len(df)) and bool((given != "").all())


def rank_level(rank: int, n: int) -> str:
    """The level of the candidate of rank ``rank`` (0 = most similar) among ``n``: see the
    module docstring (``per_image``)."""
    if not 0 <= rank < n:
        raise ValueError(f"rank {rank} outside 0..{n - 1}")
    last = len(LEVELS) - 1
    if rank == 0:
        return LEVELS[0]
    if rank == n - 1:
        return LEVELS[last]
    x = Fraction(len(LEVELS) * (2 * rank + 1), 2 * n)  # quintile position of (r + 1/2) / n
    i = int(x)  # floor
    if x == i:  # on a quintile boundary: the level nearer the middle one (L3)
        i = i if i <= last // 2 else i - 1
    return LEVELS[i]


def _percentile_mean(df: pd.DataFrame, by_group: bool) -> pd.Series:
    scores = df[list(SCORES)].astype(float)
    pct = scores.groupby(df["group"]).rank(pct=True) if by_group else scores.rank(pct=True)
    return pct.mean(axis=1)


def _order(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` sorted into each group's candidate order (most similar first), groups kept in
    their order of appearance."""
    group_pos = {g: i for i, g in enumerate(dict.fromkeys(df["group"]))}
    key = df.assign(_g=df["group"].map(group_pos))
    key = key.sort_values(["_g", "combined", "vgg_cosine", "local_inliers", "ref"],
                          ascending=[True, False, False, False, True], kind="mergesort")
    return key.drop(columns="_g")


def assign_tiers(df: pd.DataFrame, assign: str) -> pd.DataFrame:
    """Add ``combined``, ``tier`` and ``used`` (rules: the module docstring), rows kept in order."""
    if assign not in ASSIGN:
        raise RefsrError("tiers.assign", f"unknown value {assign!r} ({', '.join(ASSIGN)})")
    df = df.copy()
    given = has_given_levels(df)
    df["combined"] = _percentile_mean(df, by_group=given or assign == "per_image")
    ordered = _order(df)
    if given:
        tier = df["level"].astype(str)
    elif assign == "per_image":
        rank = ordered.groupby("group", sort=False).cumcount()
        size = ordered.groupby("group", sort=False)["ref"].transform("size")
        tier = pd.Series([rank_level(int(r), int(n)) for r, n in zip(rank, size, strict=True)],
                         index=ordered.index, dtype=object)
    else:  # global quintiles of the combined percentile, 1.0 = most similar -> L1
        order = df["combined"].rank(method="first", ascending=False, pct=True)
        idx = np.minimum((order.to_numpy() * len(LEVELS) - 1e-9).astype(int), len(LEVELS) - 1)
        tier = pd.Series([LEVELS[i] for i in idx], index=df.index, dtype=object)
    df["tier"] = tier.reindex(df.index)
    ordered = ordered.assign(tier=df["tier"])
    first = ~ordered.duplicated(["group", "tier"], keep="first")  # the best of each level
    df["used"] = first.reindex(df.index).astype(bool)
    return df[list(COLUMNS)]


def absent_levels(tiers: pd.DataFrame, groups: Iterable[str],
                  levels: Iterable[str] = EVAL_LEVELS) -> list[tuple[str, str]]:
    """``(group, level)`` of ``levels`` at which ``groups`` have no reference: structurally
    absent (L1..L5 without a reference there; ALL and ALL_STITCHED without any reference)."""
    present = set(zip(tiers["group"].astype(str), tiers["tier"].astype(str), strict=True))
    with_refs = set(tiers["group"].astype(str))
    levels = list(levels)
    out = []
    for g in groups:
        for lv in levels:
            if (lv in LEVELS and (g, lv) not in present) or (lv in REFERENCE_SETS and g not in with_refs):
                out.append((g, lv))
    return out


def assignment_text(given: bool, assign: str) -> str:
    """How the levels of a tiers table came about, for captions and logs."""
    if given:
        return "given by the dataset"
    if assign == "per_image":
        return ("assigned per image (tiers.assign: per_image): each image's candidates ranked by "
                "the mean of their two score percentiles; the best is L1, the worst L5, each "
                "other one the quintile of its rank quantile (r + 1/2)/n")
    return ("assigned from global quintiles (tiers.assign: global) of the mean of the two score "
            "percentiles over all pairs")


def write_tiers(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write the tiers CSV atomically (the columns of :data:`COLUMNS`)."""
    with atomic_path(path) as tmp:
        df[list(COLUMNS)].to_csv(tmp, index=False, float_format="%.5f")


def read_tiers(path: str | os.PathLike) -> pd.DataFrame:
    """The tiers CSV (group and reference names kept as strings), columns checked."""
    path = Path(path)
    if not path.is_file():
        raise RefsrError(path, "tiers CSV not found; run the tiers stage first")
    df = pd.read_csv(path, keep_default_na=False, dtype={"group": str, "ref": str, "level": str,
                                                         "tier": str})
    if tuple(df.columns) != COLUMNS:
        raise RefsrError(path, f"not a tiers CSV: columns {list(df.columns)}, expected {list(COLUMNS)}")
    used = df["used"].astype(str)
    if not used.isin(["True", "False"]).all():
        raise RefsrError(path, "column used must be True or False")
    df["used"] = used == "True"
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

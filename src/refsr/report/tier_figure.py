"""Figure: distribution of each similarity score per reference level."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from refsr.core.atomic import atomic_path  # noqa: E402
from refsr.data.layout import LEVELS  # noqa: E402
from refsr.similarity.tiers import SCORES  # noqa: E402

LABELS = {"local_inliers": "local-feature RANSAC inliers", "vgg_cosine": "VGG19 relu3_1 mean best cosine"}


def plot_score_distribution(df: pd.DataFrame, agreement: pd.DataFrame, title: str,
                            out_png: str | os.PathLike, out_pdf: str | os.PathLike | None = None) -> None:
    """One panel per score: points per level with the level mean, rho in the panel title."""
    fig, axes = plt.subplots(1, len(SCORES), figsize=(4.2 * len(SCORES), 3.4), constrained_layout=True)
    rng = np.random.RandomState(0)
    for ax, score in zip(np.atleast_1d(axes), SCORES, strict=True):
        for i, level in enumerate(LEVELS):
            vals = df.loc[df["tier"] == level, score].to_numpy(dtype=float)
            ax.scatter(i + 1 + rng.uniform(-0.12, 0.12, len(vals)), vals, s=14, alpha=0.6)
            if len(vals):
                ax.hlines(vals.mean(), i + 0.7, i + 1.3, color="k", lw=2)
        rho = agreement.set_index("score").loc[score, "spearman_rho"]
        ax.set_xticks(range(1, len(LEVELS) + 1), LEVELS)
        ax.set_xlabel("reference level (L1 = most similar)")
        ax.set_title(f"{LABELS[score]}\nSpearman rho = {rho:.2f}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    for out in [out_png] + ([out_pdf] if out_pdf else []):
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=120)
    plt.close(fig)

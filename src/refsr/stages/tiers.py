"""Rule tiers: similarity scores per (image, reference), level agreement table and figure."""

from __future__ import annotations

import logging

import pandas as pd

from refsr.core.atomic import atomic_path, write_text
from refsr.core.imageio import read_image
from refsr.data import read_manifest
from refsr.data.layout import LEVELS, Dataset
from refsr.data.lr import lr_path
from refsr.report.markdown import markdown_table
from refsr.report.tier_figure import plot_score_distribution
from refsr.similarity.local import LocalFeatureMatcher
from refsr.similarity.tiers import (
    absent_levels,
    assignment_text,
    has_given_levels,
    level_agreement,
    score_dataset,
    write_tiers,
)
from refsr.similarity.vgg_score import VGGSimilarity

log = logging.getLogger(__name__)


def run_tiers(ds: Dataset, lr_dir, outputs: dict, cfg: dict, scale: int, resize: str,
              vgg19_weights: str | None) -> pd.DataFrame:
    """Score every pair, write the CSV, the agreement table and the figure."""
    local = LocalFeatureMatcher.from_config(cfg)
    vgg = VGGSimilarity(vgg19_weights, cfg["max_mb"], scale, resize)
    lrs = {g.name: read_image(lr_path(lr_dir, "test", g.name)) for g in ds.groups}
    df = score_dataset(ds, lrs, local, vgg, cfg["assign"])
    agree = level_agreement(df)
    write_tiers(df, outputs["csv"])
    with atomic_path(outputs["agreement_csv"]) as tmp:
        agree.to_csv(tmp, index=False, float_format="%.5f")
    source = assignment_text(has_given_levels(df), cfg["assign"])
    absent = absent_levels(df, [g.name for g in ds.groups], LEVELS)
    caption = (f"Similarity scores vs reference level on `{ds.name}` ({len(ds.groups)} groups, "
               f"{len(df)} pairs; levels {source}). Where several references share an "
               f"(image, level), the best-scored one is that level's reference (column `used`). "
               f"{len(absent)} (image, level) cells of L1..L5 have no reference (structurally "
               f"absent: the per-level means are over the images that have the level, with their "
               f"count). Spearman rho < 0 means the score falls as the level rises. Local features: "
               f"{cfg['local_features'].upper()}, ratio {cfg['ratio']}, RANSAC {cfg['ransac_px']} px. "
               f"VGG19 weights: {vgg.weights_source}.\n\n")
    write_text(outputs["agreement_md"], caption + markdown_table(agree))
    plot_score_distribution(df, agree, f"{ds.name}: similarity score per reference level",
                            outputs["png"], outputs.get("pdf"))
    for g in ds.groups:
        part = df[df["group"] == g.name]
        log.info("%s: %s", g.name, ", ".join(
            f"{r.ref}={r.tier}{'' if r.used else ' (not used)'}" for r in part.itertuples())
            or "no reference")
    for row in agree.itertuples():
        log.info("%s: Spearman rho vs level = %.3f (p = %.2g)", row.score, row.spearman_rho, row.p_value)
    return df


def main(smk) -> None:
    ds = read_manifest(smk.input.manifest, smk.wildcards.dataset)
    job = smk.params.job
    run_tiers(ds, smk.input.lr, dict(smk.output.items()), job["tiers"], job["scale"], job["resize"],
              job["vgg19_weights"])

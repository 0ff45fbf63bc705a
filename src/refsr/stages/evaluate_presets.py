"""Rule evaluate_presets: one method's SR images at L1 and ALL_STITCHED under every protocol preset
(the benchmark table's protocol comparison)."""

from __future__ import annotations

import logging

from refsr.data import read_manifest
from refsr.evaluation.presets import score_presets, write_presets
from refsr.similarity.tiers import absent_levels, read_tiers

log = logging.getLogger(__name__)


def main(smk) -> None:
    job = smk.params.job
    ds = read_manifest(smk.input.manifest, smk.wildcards.dataset)
    absent = absent_levels(read_tiers(smk.input.tiers), [g.name for g in ds.groups], job["levels"])
    df = score_presets(ds, smk.input.sr, job["scale"], job["resize"], job["levels"], absent)
    write_presets(df, smk.output[0])
    for (preset, level), part in df.groupby(["preset", "level"], sort=False):
        log.info("%s %s under %s: PSNR %.3f dB, SSIM %.4f", smk.wildcards.model, level, preset,
                 part["psnr"].mean(), part["ssim"].mean())

"""Rule evaluate: PSNR / SSIM / LPIPS / ST-LPIPS of one model on every test image and level of a dataset."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import pandas as pd

from refsr.data import read_manifest
from refsr.data.layout import Dataset
from refsr.evaluation.lpips import LPIPSMetric
from refsr.evaluation.protocol import protocol_from_config
from refsr.evaluation.results import (
    evaluate_model,
    lpips_info,
    sidecar,
    stlpips_info,
    write_results,
)
from refsr.evaluation.stlpips import STLPIPSMetric
from refsr.similarity.tiers import absent_levels, read_tiers

log = logging.getLogger(__name__)


def run_evaluation(ds: Dataset, sr_dir: str | os.PathLike, model: str, config: Mapping[str, Any],
                   tiers_csv: str | os.PathLike, csv_path: str | os.PathLike,
                   json_path: str | os.PathLike,
                   lpips_metric: LPIPSMetric | None = None) -> pd.DataFrame:
    """Score one model on one dataset, write the CSV and its sidecar.

    The tiers CSV says which (image, level) cells are structurally absent (no reference at
    that level): they get no row; an SR output missing elsewhere is a failure (a NaN row).
    One :class:`LPIPSMetric` per job (downloads allowed: offline it fails fast and the
    column is NaN with the reason in the sidecar); ``lpips_metric`` replaces it.
    """
    protocol = protocol_from_config(config)
    ev = config["evaluation"]
    enabled = bool(ev["lpips"])
    if lpips_metric is None and enabled:
        lpips_metric = LPIPSMetric(weights_path=ev["lpips_weights"] or None,
                                   device=str(config["device"]), allow_download=True)
    metric = lpips_metric if enabled else None
    info = lpips_info(metric, enabled)
    if info["available"]:
        log.info("LPIPS weights: %s", info["source"])
    else:
        log.warning("LPIPS not computed (NaN): %s", info["reason"])
    st = STLPIPSMetric(ev["stlpips_net"], device=str(config["device"])) if ev["stlpips"] else None
    if st is not None:
        log.info("ST-LPIPS weights: %s", st.source)  # builds it: a missing weight fails here
    log.info("protocol: %s", protocol.describe())
    absent = absent_levels(read_tiers(tiers_csv), [g.name for g in ds.groups], ev["levels"])
    if absent:
        log.info("%d (image, level) cells have no reference (structurally absent): %s",
                 len(absent), ", ".join(f"{g}/{lv}" for g, lv in absent))
    df, missing = evaluate_model(ds, sr_dir, protocol, metric, ev["levels"], stlpips_metric=st,
                                 absent=absent)
    if st is not None and st.skipped:
        log.warning("ST-LPIPS not computed (NaN) for %d image(s): %s", st.skipped, st.reason)
    meta = sidecar(df, missing, protocol, info, ds.name, model, stlpips_info(st), absent=absent,
                   levels=ev["levels"])
    write_results(df, meta, csv_path, json_path)
    scored = df.dropna(subset=["psnr"])
    for level, part in scored.groupby("level", sort=False):
        log.info("%s %s: PSNR %.3f dB, SSIM %.4f over %d images", model, level,
                 part["psnr"].mean(), part["ssim"].mean(), len(part))
    if missing:
        log.warning("%d (image, level) cells have no SR output although the image has the "
                    "level; the tables mark them", len(missing))
    return df


def main(smk) -> None:
    ds = read_manifest(smk.input.manifest, smk.wildcards.dataset)
    run_evaluation(ds, smk.input.sr, smk.wildcards.model, smk.params.job, smk.input.tiers,
                   smk.output.csv, smk.output.json)

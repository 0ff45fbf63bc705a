"""Rule tables: main, per-level (and on CUFED5 paper-vs-reproduced) tables as CSV, Markdown, LaTeX."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from refsr.evaluation.presets import read_presets, summarise_presets
from refsr.evaluation.protocol import protocol_from_config
from refsr.models.importers import describe_record, released_record
from refsr.report.benchmark import benchmark_table
from refsr.report.provenance import build_provenance
from refsr.report.render import Table
from refsr.report.summary import load_evals, summarise
from refsr.report.tables import main_table, paper_table, per_level_table

log = logging.getLogger(__name__)


def run_tables(csv_paths: Sequence[str | os.PathLike], config: Mapping[str, Any],
               models: Sequence[str], datasets: Sequence[str], outputs: Mapping[str, Any],
               paper_dataset: str | None = None, config_hash: str | None = None,
               preset_paths: Sequence[str | os.PathLike] = (),
               released_paths: Sequence[str | os.PathLike] = ()) -> dict[str, Table]:
    """``outputs`` has ``{main,per_level[,paper][,benchmark]}_{csv,md,tex}`` paths; ``config_hash``
    is the caption's (default: the hash of ``config``); ``preset_paths``: the scores under every
    preset, read by the benchmark table (made when ``config["benchmark"]``); ``released_paths``:
    the imported weights' sha256 records, quoted in every caption."""
    evals, metas = load_evals(csv_paths)
    records = [released_record(p) for p in released_paths]
    prov, lp_ok = build_provenance(config, metas, evals, config_hash,
                                   released={r["model"]: describe_record(r) for r in records})
    level = str(config["evaluation"]["main_level"])
    levels = list(config["evaluation"]["levels"])
    summary = summarise(evals, levels, metas)
    tables = {"main": main_table(summary, models, datasets, prov, level, lp_ok),
              "per_level": per_level_table(summary, models, datasets, prov, lp_ok, levels)}
    if paper_dataset is not None:
        tables["paper"] = paper_table(summary, models, paper_dataset, prov, levels,
                                      protocol_from_config(config))
    if config.get("benchmark"):
        frames = {(Path(p).parent.parent.name, Path(p).stem): read_presets(p) for p in preset_paths}
        tables["benchmark"] = benchmark_table(summary, summarise_presets(frames), models, datasets, prov, levels,
                                              config["origins"], protocol_from_config(config), paper_dataset,
                                              lp_ok)
    for key, table in tables.items():
        table.write(outputs[f"{key}_csv"], outputs[f"{key}_md"], outputs[f"{key}_tex"])
        log.info("wrote the %s table", table.name)
    n_missing = int(summary["n_missing"].sum())
    if n_missing:
        log.warning("%d (image, level) cells have no SR output; their means are marked, "
                    "not reported", n_missing)
    return tables


def main(smk) -> None:
    job = smk.params.job
    run_tables(list(smk.input.csv), job, job["methods"], job["datasets"], dict(smk.output.items()),
               paper_dataset=job["paper_dataset"], config_hash=job["config_hash"],
               preset_paths=list(smk.input.presets), released_paths=list(smk.input.released))

"""Rule infer: one model on every test group and evaluation level of one dataset."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from refsr.core.atomic import atomic_dir
from refsr.core.imageio import read_image, write_image
from refsr.core.progress import progress
from refsr.data import read_manifest
from refsr.data.layout import Dataset
from refsr.data.lr import lr_path
from refsr.inference.levels import eval_levels, level_images, level_references
from refsr.inference.resolver import SuperResolver
from refsr.similarity.tiers import read_tiers
from refsr.stages.runner import settings

log = logging.getLogger(__name__)

ALIGNMENT_JSON = "alignment.json"  # reference-alignment counts beside a reference model's SR images


def run_inference(ds: Dataset, lr_dir: Path, tiers_csv: Path, resolver: SuperResolver,
                  out_dir: Path, levels: Sequence[str]) -> int:
    """Super-resolve every test group at each of ``levels`` it has into ``out_dir/{group}/{level}.png``.

    Every model writes the same cells: LR, HR, each of L1..L5 at which the group has a
    reference (its ``used`` one in the tiers table), and ALL / ALL_STITCHED when it has any. A level without a reference is
    structurally absent for that group: nothing is written, and the evaluation leaves it out
    (an output missing at a level the group has is a failure, marked by the tables).
    Returns the number of images written.
    """
    refs_by_level = level_references(ds, read_tiers(tiers_csv))
    n = 0
    with atomic_dir(out_dir) as tmp:
        for g in progress(ds.groups, f"{resolver.name} on {ds.name}", logger=log):
            lr = read_image(lr_path(lr_dir, "test", g.name))
            has = eval_levels(g, refs_by_level[g.name], levels)
            absent = [lv for lv in levels if lv not in has]
            if absent:
                log.info("%s: no reference at %s (structurally absent); not written", g.name,
                         ", ".join(absent))
            sr = None if resolver.uses_reference else resolver(lr)  # one output for every level
            for level in has:
                if resolver.uses_reference:
                    refs = level_images(g, level, lr, refs_by_level[g.name], resolver.scale,
                                        resolver.resize)
                    sr = resolver(lr, refs)
                write_image(tmp / g.name / f"{level}.png", sr)
                n += 1
        if resolver.uses_reference:
            stats = {"model": resolver.name, "align": resolver.aligner.mode, **resolver.align_stats.as_dict()}
            (tmp / ALIGNMENT_JSON).write_text(json.dumps(stats, indent=1) + "\n")
            log.info("alignment: %s", resolver.align_stats.summary())
    log.info("wrote %d SR images to %s", n, out_dir)
    return n


def make_resolver(smk) -> SuperResolver:
    """The job's SuperResolver: its params (an inference job spec), its checkpoints (the model's,
    and the SISR model's when it matches in the SR domain) and the memory budget setting."""
    return SuperResolver.from_config(smk.params.job, smk.input.get("checkpoint"), smk.input.get("sisr"),
                                     max_mb=settings(smk)["max_mb"])


def main(smk) -> None:
    ds = read_manifest(smk.input.manifest, smk.wildcards.dataset)
    run_inference(ds, smk.input.lr, smk.input.tiers, make_resolver(smk), smk.output[0], smk.params.job["levels"])

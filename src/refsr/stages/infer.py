"""Rule infer: one model on every test group and evaluation level of one dataset."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from refsr.core.atomic import atomic_dir
from refsr.core.errors import RefsrError
from refsr.core.imageio import read_image, write_image
from refsr.core.progress import progress
from refsr.data import read_manifest
from refsr.data.layout import Dataset
from refsr.data.lr import lr_path
from refsr.inference.align import ReferenceAligner
from refsr.inference.levels import eval_levels, level_images, level_references
from refsr.inference.resolver import SuperResolver
from refsr.models import registry
from refsr.similarity.local import LocalFeatureMatcher
from refsr.similarity.tiers import read_tiers

log = logging.getLogger(__name__)

ALIGNMENT_JSON = "alignment.json"  # reference-alignment counts beside a reference model's SR images


def make_aligner(cfg: dict, model: str) -> ReferenceAligner:
    """The validated config's ``reference`` section (``per_model`` over ``align``) as an aligner."""
    ref, tiers = cfg["reference"], cfg["tiers"]
    return ReferenceAligner(ref["per_model"].get(model, ref["align"]), min_inliers=ref["min_inliers"],
                            max_scale=ref["max_scale"],
                            matcher=LocalFeatureMatcher(tiers["local_features"], tiers["ratio"], tiers["ransac_px"]),
                            scale=cfg["scale"], max_flow=ref["max_flow"])


def make_matching_sisr(cfg: dict, model: str, checkpoint: str | None,
                       degrade: str | None = None) -> SuperResolver | None:
    """``reference.degrade`` (or a variant's ``degrade``) sr_model: the single-image model
    (``reference.sisr_model``, from ``checkpoint``) whose outputs reference-based ``model``
    matches; ``None`` for bicubic or a model without references."""
    degrade = degrade or cfg["reference"]["degrade"]
    if degrade != "sr_model" or not registry.get(model).uses_reference:
        return None
    if not checkpoint:
        raise RefsrError("reference.degrade", f"sr_model needs the checkpoint of {cfg['reference']['sisr_model']}")
    return SuperResolver(checkpoint, model=cfg["reference"]["sisr_model"], device=cfg["device"],
                         tile=cfg["inference"]["tile"], pad=cfg["inference"]["pad"], scale=cfg["scale"],
                         resize=cfg["resize"])


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


def resolver_config(smk) -> dict:
    """The job's params with the config's ``reference`` and ``tiers`` sections (the params hold
    only the reference keys that change the outputs; the resolver needs them all)."""
    return {**smk.params.config, "reference": smk.config["reference"], "tiers": smk.config["tiers"]}


def make_resolver(cfg: dict, model: str, checkpoint: str | None, sisr: str | None, max_mb: float,
                  align: str | None = None, degrade: str | None = None) -> SuperResolver:
    """The SuperResolver rule infer runs for ``model`` under ``cfg`` (:func:`resolver_config`); an
    ablation variant passes its own ``align`` / ``degrade``."""
    if align is not None:
        cfg = {**cfg, "reference": {**cfg["reference"], "per_model": {}, "align": align}}
    return SuperResolver(checkpoint, model=model, vgg_weights=cfg["vgg19_weights"], device=cfg["device"],
                         max_mb=max_mb, tile=cfg["inference"]["tile"], pad=cfg["inference"]["pad"],
                         scale=cfg["scale"], resize=cfg["resize"], match_mode=cfg["matching"]["mode"],
                         approx=cfg["matching"]["approximate"], aligner=make_aligner(cfg, model),
                         vgg_mat=cfg["vgg19_mat"], matching_sisr=make_matching_sisr(cfg, model, sisr, degrade))


def main(smk) -> None:
    cfg = resolver_config(smk)
    ds = read_manifest(smk.input.manifest, smk.wildcards.dataset)
    resolver = make_resolver(cfg, smk.wildcards.model, smk.input.get("checkpoint"), smk.input.get("sisr"),
                             smk.config["matching"]["max_mb"])
    run_inference(ds, smk.input.lr, smk.input.tiers, resolver, smk.output[0], cfg["levels"])

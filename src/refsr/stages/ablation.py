"""Rules ablation_variant, ablation and match_study (``make ablations``).

``ablation_variant``: one variant of ``ablations`` (one model with some settings changed,
:mod:`refsr.evaluation.variants`) on one dataset: inference as rule infer does, with the
variant's ``reference.align`` / ``reference.degrade``, its test LR and its model's checkpoint
(trained on the variant's training LR: the workflow's train_variant chain), then the evaluation
as rule evaluate does. ``ablation``: the variants against their baselines, the models' main runs
or other variants (:mod:`refsr.report.ablation`). ``match_study``: known-correspondence matching accuracy
(:mod:`refsr.inference.match_study`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from refsr.core.atomic import atomic_path
from refsr.core.errors import RefsrError
from refsr.data import read_manifest
from refsr.evaluation.results import read_eval_csv
from refsr.evaluation.variants import change_text, check_variants
from refsr.features.vgg import load_vgg19
from refsr.inference.align import ReferenceAligner
from refsr.inference.match_study import study_rows
from refsr.inference.resolver import SuperResolver
from refsr.report.ablation import (
    Variant,
    ablation_frame,
    ablation_table,
    delta_figure,
    match_accuracy_table,
)
from refsr.similarity.local import LocalFeatureMatcher
from refsr.stages.evaluate import run_evaluation
from refsr.stages.infer import ALIGNMENT_JSON, make_resolver, run_inference
from refsr.stages.runner import settings

log = logging.getLogger(__name__)


def variant_main(smk) -> None:
    """One variant on one dataset: params.job = the resolver of its model under the variant's
    settings, the evaluation section, and the variant's model and settings
    (:func:`refsr.pipeline.jobs.ablation_variant`)."""
    cfg = smk.params.job
    v = cfg["variant"]
    ds = read_manifest(smk.input.manifest, smk.wildcards.dataset)
    run_inference(ds, smk.input.lr, smk.input.tiers, make_resolver(smk), smk.output.sr, cfg["evaluation"]["levels"])
    run_evaluation(ds, smk.output.sr, v["model"], cfg, smk.input.tiers, smk.output.csv, smk.output.json)


def table_main(smk) -> None:
    cfg = smk.params.job
    check_variants(cfg)
    variants = [Variant(v["name"], v["model"], change_text(cfg, v), v.get("baseline"))
                for v in cfg["ablations"]]
    base = {(Path(p).parent.name, Path(p).stem): read_eval_csv(p) for p in smk.input.base}
    runs, counts = {}, {}
    for p, sr in zip(smk.input.runs, smk.input.sr, strict=True):  # the same (dataset, variant) order
        key = (Path(p).parent.name, Path(p).stem)
        runs[key] = read_eval_csv(p)
        sidecar = Path(sr) / ALIGNMENT_JSON
        counts[key] = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    frame = ablation_frame(base, runs, variants, cfg["evaluation"]["levels"], counts)
    ablation_table(frame, variants, cfg["protocol_text"]).write(smk.output.csv, smk.output.md, smk.output.tex)
    fig = delta_figure(frame, cfg["evaluation"]["levels"])
    for path in (smk.output.png, smk.output.pdf):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix[1:], dpi=150)
    log.info("wrote the ablation table (%d rows) and figure", len(frame))


def match_study_main(smk) -> None:
    cfg = smk.params.job
    study, ds_cfg = cfg["match_study"], cfg["dataset"]
    if ds_cfg["kind"] != "embedded":
        raise RefsrError(f"datasets.{smk.wildcards.dataset}", "the match study needs an embedded dataset "
                                                              "(its views are made from the photos)")
    aligner = ReferenceAligner("homography", cfg["reference"]["min_inliers"], cfg["reference"]["max_scale"],
                               LocalFeatureMatcher.from_config(cfg["features"]))
    sisr = SuperResolver(smk.input.checkpoint, model=study["sisr_model"], device=cfg["device"], tile=0,
                         scale=cfg["scale"], resize=cfg["resize"])
    vgg = load_vgg19(("relu3_1",), weights=cfg["vgg19_weights"], device="cpu")
    side = int(ds_cfg["hr_size"]) // cfg["scale"] * cfg["scale"]
    df = study_rows(list(ds_cfg["test_photos"]), side, study["angles"], aligner, sisr, vgg,
                    scale=cfg["scale"], resize=cfg["resize"], seed=study["seed"], max_mb=settings(smk)["max_mb"])
    match_accuracy_table(df, study["sisr_model"]).write(smk.output.csv, smk.output.md, smk.output.tex)
    log.info("match study: %d matchings", len(df))

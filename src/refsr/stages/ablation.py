"""Rules ablation_variant, ablation and match_study (``make ablations``).

``ablation_variant``: one variant of ``ablations`` (one model, one change) on one dataset:
inference as rule infer does, with the variant's ``reference.align`` / ``reference.degrade`` or
test LR, then the evaluation as rule evaluate does. ``ablation``: the variants against their models' main runs
(:mod:`refsr.report.ablation`). ``match_study``: known-correspondence matching accuracy
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
from refsr.features.vgg import load_vgg19
from refsr.inference.align import ReferenceAligner
from refsr.inference.match_study import study_rows
from refsr.inference.resolver import SuperResolver
from refsr.models import registry
from refsr.report.ablation import (
    Variant,
    ablation_frame,
    ablation_table,
    delta_figure,
    match_accuracy_table,
)
from refsr.similarity.local import LocalFeatureMatcher
from refsr.stages.evaluate import run_evaluation
from refsr.stages.infer import ALIGNMENT_JSON, make_aligner, make_matching_sisr, run_inference

log = logging.getLogger(__name__)


def variant_of(config: dict, name: str) -> dict:
    for v in config["ablations"]:
        if v["name"] == name:
            return v
    raise RefsrError("ablations", f"no variant named {name!r}")


def check_variants(config: dict) -> None:
    """Every variant names a model of ``models``, once, and changes something it can."""
    names = [v["name"] for v in config["ablations"]]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RefsrError("ablations", f"variant names repeat: {', '.join(dup)}")
    for v in config["ablations"]:
        if v["model"] not in config["models"]:
            raise RefsrError("ablations", f"variant {v['name']!r}: model {v['model']!r} is not in models")
        for key in ("align", "degrade"):
            if key in v and not registry.get(v["model"]).uses_reference:
                raise RefsrError("ablations", f"variant {v['name']!r}: {v['model']} takes no reference, "
                                              f"so its reference.{key} changes nothing")


def change_text(config: dict, v: dict) -> str:
    parts = []
    if "align" in v:
        base = config["reference"]["per_model"].get(v["model"], config["reference"]["align"])
        parts.append(f"reference.align: {base} → {v['align']}")
    if "degrade" in v:
        sisr = f" with {config['reference']['sisr_model']}" if v["degrade"] == "sr_model" else ""
        parts.append(f"reference.degrade (what the matching compares): {config['reference']['degrade']} → "
                     f"{v['degrade']}{sisr}")
    if "test_degradation" in v:
        parts.append(f"test LR (degradation.test): {config['degradation']['test']} → {v['test_degradation']}"
                     f" (models trained on {config['degradation']['train']} LR)")
    return "; ".join(parts)


def variant_main(smk) -> None:
    cfg, v = smk.params.config, variant_of(smk.params.config, smk.wildcards.variant)
    ds = read_manifest(smk.input.manifest, smk.wildcards.dataset)
    ref_cfg = cfg["reference"] if "align" not in v else {**cfg["reference"], "per_model": {}, "align": v["align"]}
    aligner = make_aligner({**cfg, "reference": ref_cfg}, v["model"])
    resolver = SuperResolver(smk.input.checkpoint, model=v["model"], vgg_weights=cfg["vgg19_weights"],
                             device=cfg["device"], max_mb=cfg["matching"]["max_mb"],
                             tile=cfg["inference"]["tile"], pad=cfg["inference"]["pad"], scale=cfg["scale"],
                             resize=cfg["resize"], match_mode=cfg["matching"]["mode"],
                             approx=cfg["matching"]["approximate"], aligner=aligner,
                             matching_sisr=make_matching_sisr(cfg, v["model"], smk.input.get("sisr"), v.get("degrade")))
    run_inference(ds, smk.input.lr, smk.input.tiers, resolver, smk.output.sr, cfg["evaluation"]["levels"])
    run_evaluation(ds, smk.output.sr, v["model"], cfg, smk.input.tiers, smk.output.csv, smk.output.json)


def table_main(smk) -> None:
    cfg = smk.params.config
    check_variants(cfg)
    variants = [Variant(v["name"], v["model"], change_text(cfg, v)) for v in cfg["ablations"]]
    base = {(Path(p).parent.name, Path(p).stem): read_eval_csv(p) for p in smk.input.base}
    runs, counts = {}, {}
    for p in smk.input.runs:
        key = (Path(p).parent.name, Path(p).stem)
        runs[key] = read_eval_csv(p)
        sidecar = Path(p).parent / key[1] / "sr" / ALIGNMENT_JSON
        counts[key] = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    frame = ablation_frame(base, runs, variants, cfg["evaluation"]["levels"], counts)
    ablation_table(frame, variants, smk.params.protocol).write(smk.output.csv, smk.output.md, smk.output.tex)
    fig = delta_figure(frame, cfg["evaluation"]["levels"])
    for path in (smk.output.png, smk.output.pdf):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix[1:], dpi=150)
    log.info("wrote the ablation table (%d rows) and figure", len(frame))


def match_study_main(smk) -> None:
    cfg, study = smk.params.config, smk.params.config["match_study"]
    ds_cfg = cfg["datasets"][smk.wildcards.dataset]
    if ds_cfg["kind"] != "embedded":
        raise RefsrError(f"datasets.{smk.wildcards.dataset}", "the match study needs an embedded dataset "
                                                              "(its views are made from the photos)")
    tiers = cfg["tiers"]
    aligner = ReferenceAligner("homography", cfg["reference"]["min_inliers"], cfg["reference"]["max_scale"],
                               LocalFeatureMatcher(tiers["local_features"], tiers["ratio"], tiers["ransac_px"]))
    sisr = SuperResolver(smk.input.checkpoint, model=study["sisr_model"], device=cfg["device"], tile=0,
                         scale=cfg["scale"], resize=cfg["resize"])
    vgg = load_vgg19(("relu3_1",), weights=cfg["vgg19_weights"], device="cpu")
    side = int(ds_cfg["hr_size"]) // cfg["scale"] * cfg["scale"]
    df = study_rows(list(ds_cfg["test_photos"]), side, study["angles"], aligner, sisr, vgg,
                    scale=cfg["scale"], resize=cfg["resize"], seed=study["seed"], max_mb=cfg["matching"]["max_mb"])
    match_accuracy_table(df, study["sisr_model"]).write(smk.output.csv, smk.output.md, smk.output.tex)
    log.info("match study: %d matchings", len(df))

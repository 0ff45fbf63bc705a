"""docs/configuration.md "What a config change re-runs", row by row, asked of the job specs directly
(:func:`refsr.pipeline.rerun.changed`: the jobs whose params change; Snakemake re-runs them and
what follows from their outputs). tests/test_provenance.py checks the same on a finished smoke
run through Snakemake."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from refsr.core.config import validate
from refsr.pipeline.rerun import changed, main_jobs

ROOT = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((ROOT / "configs/smoke.yaml").read_text())
EVERY = ["bicubic", "srresnet", "srgan", "srntt_l2", "srntt", "ttsr_rec", "ttsr"]
REF_MODELS = ["srntt_l2", "srntt", "ttsr_rec", "ttsr"]


def edited(**changes) -> dict:
    """The smoke config with dotted keys set (``"train.log_every": 5``)."""
    cfg = copy.deepcopy(SMOKE)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = cfg
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return cfg


def reruns(**changes) -> dict[str, list[str]]:
    return changed(validate(SMOKE), validate(edited(**changes)))


def evaluated(models=EVERY) -> list[str]:
    return [f"embedded/{m}" for m in models]


def _reversed(value):
    if isinstance(value, dict):
        return {k: _reversed(value[k]) for k in reversed(list(value))}
    return value


def test_the_main_run_has_every_rule_of_the_dag():
    rules = {rule for rule, _ in main_jobs(validate(SMOKE))}
    assert rules == {"build_dataset", "degrade", "tiers", "correspondence", "train", "infer", "evaluate",
                     "figures", "tables"}


def test_row_key_order_and_number_formatting_rerun_nothing():
    cfg = _reversed(copy.deepcopy(SMOKE))
    cfg["degradation"] = _reversed(validate({})["degradation"])  # the default section, written out
    cfg["loss"] = {"texture": 0.0001, **cfg["loss"]}  # the default, another formatting
    assert list(cfg) != list(SMOKE)
    assert changed(validate(SMOKE), validate(cfg)) == {}


def test_row_a_model_added_runs_its_jobs_tables_and_figures():
    base = edited(models=[m for m in EVERY if m != "srgan"])
    assert changed(validate(base), validate(SMOKE)) == {
        "train": ["srgan"], "infer": ["embedded/srgan"], "evaluate": ["embedded/srgan"],
        "figures": ["embedded"], "tables": [""]}


def test_row_a_dataset_added_runs_its_data_tiers_inference_and_evaluation():
    cfg = edited(**{"datasets.other": {**SMOKE["datasets"]["embedded"], "test_photos": ["coffee"]}},
                 eval_datasets=["embedded", "other"])
    got = reruns(**{"datasets.other": cfg["datasets"]["other"], "eval_datasets": ["embedded", "other"]})
    assert got == {"build_dataset": ["other"], "degrade": ["other"], "tiers": ["other"],
                   "infer": [f"other/{m}" for m in EVERY], "evaluate": [f"other/{m}" for m in EVERY],
                   "figures": ["other"], "tables": [""]}


@pytest.mark.parametrize("key, value", [("evaluation.main_level", "L2"), ("evaluation.crop", 0)])
def test_row_evaluation_reruns_evaluation_tables_figures(key, value):
    assert reruns(**{key: value}) == {"evaluate": evaluated(), "figures": ["embedded"], "tables": [""]}


def test_row_tiers_reruns_that_datasets_tiers():
    assert reruns(**{"tiers.ratio": 0.7}) == {"tiers": ["embedded"], "tables": [""]}


@pytest.mark.parametrize("key, value", [("matching.max_mb", 64), ("train.log_every", 7),
                                        ("train.checkpoint_every", 9), ("train.gpus", {"srntt": 2})])
def test_row_settings_rerun_nothing(key, value):
    assert reruns(**{key: value}) == {}


def test_row_matching_reruns_reference_based_inference():
    got = reruns(**{"matching.mode": "approximate"})
    assert got == {"infer": evaluated(REF_MODELS), "figures": ["embedded"], "tables": [""]}


def test_row_inference_reruns_every_inference():
    # (the figures draw TTSR's attention untiled: a tile size changes nothing there)
    assert reruns(**{"inference.tile": 64}) == {"infer": evaluated(), "tables": [""]}
    # the precision of the network pass changes every model's outputs and TTSR's drawn attention maps
    assert reruns(**{"inference.dtype": "bf16"}) == {"infer": evaluated(), "figures": ["embedded"], "tables": [""]}


def test_row_iterations_rerun_that_models_training():
    # the models trained from it follow through their input (its checkpoint)
    assert reruns(**{"train.iterations.srresnet": 6}) == {"train": ["srresnet"], "tables": [""]}


def test_row_a_loss_weight_reruns_the_models_training_with_that_term():
    assert reruns(**{"loss.texture": 0.5}) == {"train": ["srntt"], "tables": [""]}


def test_row_arch_reruns_the_models_that_use_it():
    got = reruns(**{"arch.n_feats": 12})
    assert got == {"train": ["srresnet", "srgan", "srntt_l2", "srntt"], "tables": [""]}


def test_row_ttsr_keys_rerun_only_the_ttsr_models_that_use_them():
    assert reruns(**{"ttsr.init_iterations": 3}) == {"tables": [""]}  # recipe official only
    assert reruns(**{"ttsr.refsr.lr_end": 1e-6}) == {"train": ["ttsr_rec", "ttsr"], "tables": [""]}
    official = {**SMOKE, "recipe": "official"}
    assert changed(validate(official), validate({**official, "ttsr": {**SMOKE["ttsr"], "init_iterations": 3}})) == {
        "train": ["ttsr"], "tables": [""]}
    assert reruns(**{"ttsr.arch.n_feats": 12}) == {"train": ["ttsr_rec", "ttsr"], "tables": [""]}


def test_row_an_external_method_runs_its_own_jobs_and_the_benchmark_only():
    ext = {"theirs": {"kind": "outputs", "path": "elsewhere", "levels": ["L1"], "pattern": "{group}.png"}}
    assert reruns(external=ext) == {"external_outputs": ["embedded/theirs"], "evaluate": ["embedded/theirs"],
                                    "evaluate_presets": evaluated(EVERY + ["theirs"]), "tables": [""]}


def test_row_data_keys_rerun_the_data_stage():
    assert reruns(**{"datasets.embedded.train_photos": ["hubble_deep_field", "retina"]}) == {
        "build_dataset": ["embedded"], "tables": [""]}
    got = reruns(resize="pil")
    for rule in ("degrade", "tiers", "infer", "evaluate", "figures", "tables", "correspondence"):
        assert rule in got, rule


def test_row_a_reference_key_reruns_only_what_it_affects():
    assert reruns(**{"reference.max_flow": 4.0}) == {"tables": [""]}  # no flow: changes no output
    got = reruns(**{"reference.align": "homography"})
    assert got == {"infer": evaluated(REF_MODELS), "figures": ["embedded"], "tables": [""]}


def test_figures_job_lists_the_learned_models_in_the_order_of_their_checkpoint_inputs():
    """The stage pairs params.job["learned"] with input.learned: canonical() sorts mapping keys,
    so the order must come from a list (a dict would give ttsr before ttsr_rec)."""
    from refsr.pipeline import jobs
    from refsr.pipeline.plan import Plan

    cfg = validate(SMOKE)
    names = jobs.figures(cfg)["learned"]
    ckpts = Plan(cfg).figures_inputs("embedded")["learned"]
    assert names == ["ttsr_rec", "ttsr"]
    assert [c.split("/")[-2] for c in ckpts] == names

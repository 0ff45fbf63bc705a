"""An equivalent config never redoes work: the dry runs after a finished smoke run."""

from __future__ import annotations

import pytest
import yaml
from conftest import SMOKE, planned_jobs, wildcards

from refsr.core.config import defaults

pytestmark = pytest.mark.slow


def sorted_dump(cfg: dict) -> str:
    """What a YAML tool that sorts keys writes: other key order, other number formatting."""
    return yaml.safe_dump(cfg, sort_keys=True, default_flow_style=True, width=60)


@pytest.fixture
def smoke_cfg(smoke_run) -> dict:
    return yaml.safe_load((smoke_run / SMOKE).read_text())


def plan(smoke_run, tmp_path, cfg: dict) -> dict[str, int]:
    """Jobs per rule that a dry run on the finished smoke run plans with ``cfg`` (written as
    a key-sorting YAML tool would) instead of configs/smoke.yaml ({} = nothing to do)."""
    path = tmp_path / "changed.yaml"
    path.write_text(sorted_dump(cfg))
    return {rule: len(jobs) for rule, jobs in planned_jobs(smoke_run, [path]).items()}


def test_reordered_and_reformatted_config_does_nothing(smoke_run, smoke_cfg, tmp_path):
    assert sorted_dump(smoke_cfg) != (smoke_run / SMOKE).read_text()
    assert plan(smoke_run, tmp_path, smoke_cfg) == {}


def test_added_eval_dataset_trains_nothing(smoke_run, smoke_cfg, tmp_path):
    cfg = dict(smoke_cfg, datasets={**smoke_cfg["datasets"],
                                    "second": {**smoke_cfg["datasets"]["embedded"], "test_photos": ["coffee"]}},
               eval_datasets=["embedded", "second"])
    jobs = plan(smoke_run, tmp_path, cfg)
    assert jobs and "train" not in jobs and "correspondence" not in jobs, jobs
    n = len(defaults("models"))  # every model of the smoke config (the schema default list)
    assert jobs["infer"] == n and jobs["evaluate"] == n and jobs["build_dataset"] == 1, jobs


def test_evaluation_and_logging_options_train_nothing(smoke_run, smoke_cfg, tmp_path):
    cfg = dict(smoke_cfg, evaluation={**smoke_cfg.get("evaluation", {}), "grid_crop": 32, "crop": 0},
               train={**smoke_cfg["train"], "log_every": 7, "checkpoint_every": 5},
               matching={"max_mb": 128})
    jobs = plan(smoke_run, tmp_path, cfg)
    assert "train" not in jobs and "correspondence" not in jobs and "infer" not in jobs, jobs
    assert jobs.get("evaluate") == len(defaults("models")), jobs


def test_changed_iterations_retrain_that_model_and_its_descendants(smoke_run, smoke_cfg, tmp_path):
    cfg = dict(smoke_cfg, train={**smoke_cfg["train"],
                                 "iterations": {**smoke_cfg["train"]["iterations"], "srntt_l2": 4}})
    (tmp_path / "iters.yaml").write_text(sorted_dump(cfg))
    jobs = planned_jobs(smoke_run, [tmp_path / "iters.yaml"])
    # srntt_l2 and srntt (trained from it); srresnet, srgan, ttsr_rec, ttsr kept
    assert wildcards(jobs["train"], "model") == ["srntt", "srntt_l2"], jobs
    assert wildcards(jobs["infer"], "model") == ["srntt", "srntt_l2"], jobs
    assert "correspondence" not in jobs and "build_dataset" not in jobs, jobs


def test_a_loss_weight_retrains_only_the_models_that_use_it(smoke_run, smoke_cfg, tmp_path):
    cfg = dict(smoke_cfg, loss={**smoke_cfg["loss"], "texture": 2e-4})  # only srntt has a texture term
    (tmp_path / "loss.yaml").write_text(sorted_dump(cfg))
    jobs = planned_jobs(smoke_run, [tmp_path / "loss.yaml"])
    assert wildcards(jobs["train"], "model") == ["srntt"], jobs
    assert wildcards(jobs["infer"], "model") == ["srntt"], jobs

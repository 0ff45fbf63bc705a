"""An equivalent config never redoes work: the dry runs after a finished smoke run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from refsr.core.config import defaults

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
pytestmark = pytest.mark.slow


def snakemake(wd: Path, *args: str) -> str:
    proc = subprocess.run([SNAKEMAKE, "-s", str(ROOT / "workflow/Snakefile"), "-d", str(wd), *args],
                          cwd=wd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout + proc.stderr


def planned(wd: Path, configfile: Path) -> dict[str, int]:
    """Jobs per rule that ``snakemake -n`` plans with ``configfile`` ({} = nothing to do)."""
    out = snakemake(wd, "-n", "--cores", "1", "--configfile", str(configfile))
    if "Nothing to be done" in out:
        return {}
    counts, table = {}, False
    for line in out.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            table = True
            continue
        if table and len(parts) == 2 and parts[1].isdigit():
            if parts[0] == "total":
                break
            counts[parts[0]] = int(parts[1])
    return counts


def sorted_dump(cfg: dict) -> str:
    """What a YAML tool that sorts keys writes: other key order, other number formatting."""
    return yaml.safe_dump(cfg, sort_keys=True, default_flow_style=True, width=60)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, vgg_weights):
    """The smoke pipeline, run to the end once."""
    wd = tmp_path_factory.mktemp("finished")
    shutil.copy(ROOT / "config.yaml", wd / "config.yaml")
    shutil.copytree(ROOT / "configs", wd / "configs")
    snakemake(wd, "--cores", "2", "--configfile", str(wd / "configs/smoke.yaml"))
    return wd, yaml.safe_load((wd / "configs/smoke.yaml").read_text())


def test_reordered_and_reformatted_config_does_nothing(finished):
    wd, cfg = finished
    path = wd / "sorted.yaml"
    path.write_text(sorted_dump(cfg))
    assert path.read_text() != (wd / "configs/smoke.yaml").read_text()
    assert planned(wd, path) == {}


def test_added_eval_dataset_trains_nothing(finished):
    wd, cfg = finished
    cfg = dict(cfg, datasets={**cfg["datasets"],
                              "second": {**cfg["datasets"]["embedded"], "test_photos": ["coffee"]}},
               eval_datasets=["embedded", "second"])
    path = wd / "second.yaml"
    path.write_text(sorted_dump(cfg))
    jobs = planned(wd, path)
    assert jobs and "train" not in jobs and "correspondence" not in jobs, jobs
    n = len(defaults("models"))  # every model of the smoke config (the schema default list)
    assert jobs["infer"] == n and jobs["evaluate"] == n and jobs["build_dataset"] == 1, jobs


def test_evaluation_and_logging_options_train_nothing(finished):
    wd, cfg = finished
    cfg = dict(cfg, evaluation={**cfg.get("evaluation", {}), "grid_crop": 32, "crop": 0},
               train={**cfg["train"], "log_every": 7, "checkpoint_every": 5},
               matching={"max_mb": 128})
    path = wd / "eval.yaml"
    path.write_text(sorted_dump(cfg))
    jobs = planned(wd, path)
    assert "train" not in jobs and "correspondence" not in jobs and "infer" not in jobs, jobs
    assert jobs.get("evaluate") == len(defaults("models")), jobs


def test_changed_iterations_retrain_that_model_and_its_descendants(finished):
    wd, cfg = finished
    cfg = dict(cfg, train={**cfg["train"], "iterations": {**cfg["train"]["iterations"], "srntt_l2": 4}})
    path = wd / "iters.yaml"
    path.write_text(sorted_dump(cfg))
    jobs = planned(wd, path)
    assert jobs["train"] == 2, jobs  # srntt_l2 and srntt (trained from it); srresnet, srgan kept
    assert jobs["infer"] == 2 and "correspondence" not in jobs and "build_dataset" not in jobs, jobs


def test_a_loss_weight_retrains_only_the_models_that_use_it(finished):
    wd, cfg = finished
    cfg = dict(cfg, loss={**cfg["loss"], "texture": 2e-4})  # only srntt has a texture term
    path = wd / "loss.yaml"
    path.write_text(sorted_dump(cfg))
    jobs = planned(wd, path)
    assert jobs["train"] == 1 and jobs["infer"] == 1, jobs

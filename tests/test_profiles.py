"""Snakemake profiles: profiles/slurm (snakemake-executor-plugin-slurm) and profiles/local.

Without a cluster: Snakemake finds and parses them, they name real rules, and the plugin
turns the SLURM profile's resources into the intended sbatch options. (tests/test_slurm.py
runs the profile against a real SLURM.)
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import GPU_RULES

ROOT = Path(__file__).resolve().parents[1]
SLURM = ROOT / "profiles/slurm/profile.yaml"
LOCAL = ROOT / "profiles/local/profile.yaml"
#: GPU rules whose GPUs per job come from the config (train.gpus), not from the profile.
TRAINING_RULES = {"train", "train_variant"}


def workflow_rules() -> set[str]:
    names = set()
    for smk in (ROOT / "workflow/rules").glob("*.smk"):
        text = smk.read_text()
        names |= set(re.findall(r"^rule (\w+):", text, re.M))
        names |= set(re.findall(r"^use rule \w+ as (\w+)", text, re.M))
    return names


@pytest.mark.parametrize("name", ["slurm", "local"])
def test_snakemake_finds_and_parses_the_profile(name):
    from snakemake.cli import get_argument_parser, get_profile_dir

    directory, file = get_profile_dir(str(ROOT / "profiles" / name))
    assert file.name == "profile.yaml"
    args = get_argument_parser(profiles=[str(directory)]).parse_args([])  # every key is an option
    assert args.rerun_incomplete and args.retries >= 1
    if name == "slurm":
        assert args.executor == "slurm"
        assert {"slurm_account", "slurm_partition", "runtime", "mem_mb"} <= set(args.default_resources)


def test_set_resources_name_existing_rules():
    profile = yaml.safe_load(SLURM.read_text())
    assert set(profile["set-resources"]) <= workflow_rules()


def test_every_gpu_rule_is_sized_in_the_slurm_profile():
    """Each rule that asks for a GPU (conftest.GPU_RULES) gets its GPU type, CPUs per GPU,
    runtime and memory from profiles/slurm; without an entry it would be submitted with the
    default 60-minute runtime and no GPU type."""
    profile = yaml.safe_load(SLURM.read_text())
    missing = sorted(GPU_RULES - set(profile["set-resources"]))
    assert not missing, f"profiles/slurm/profile.yaml set-resources lacks the GPU rules {missing}"


def test_gpu_rules_request_gpus_through_resources_not_gres():
    profile = yaml.safe_load(SLURM.read_text())
    for rule, res in profile["set-resources"].items():
        assert "slurm_extra" not in res and "gres" not in res, rule
        if rule in TRAINING_RULES:  # GPUs per model come from the config (train.gpus), not the profile
            assert "gpu" not in res and res["gpu_model"] and res["cpus_per_gpu"] >= 1, rule
            assert res["runtime"] > 0 and res["mem_mb"] > 0, rule
        elif rule in GPU_RULES:
            assert res["gpu"] >= 1 and res["gpu_model"] and res["cpus_per_gpu"] >= 1, rule
            assert res["runtime"] > 0 and res["mem_mb"] > 0, rule
        else:
            # a gpu_model without GPUs makes the plugin submit --gpus=<model>:0, which SLURM
            # accepts but then fails the job step
            assert "gpu_model" not in res and not res.get("gpu"), rule


class _Resources(dict):
    """Resources as the plugin reads them: ``.get(name)`` and ``.name``."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def sbatch_call(rule: str, extra: dict | None = None, threads: int = 2) -> str:
    """The sbatch command line the plugin builds for ``rule`` with the profile's resources."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string
    from snakemake_executor_plugin_slurm.validation import validate_slurm_extra

    profile = yaml.safe_load(SLURM.read_text())
    resources = _Resources({**profile["default-resources"], **profile["set-resources"].get(rule, {}),
                            **(extra or {})})
    job = SimpleNamespace(resources=resources, threads=threads, name=rule, is_group=lambda: False)
    validate_slurm_extra(job)
    params = {"run_uuid": "run", "slurm_logfile": "log", "comment_str": rule,
              "account": f" -A {resources['slurm_account']}", "partition": f" -p {resources['slurm_partition']}",
              "workdir": "/tmp"}
    return get_submit_command(job, params) + set_gres_string(job)


def test_plugin_submits_gpu_rules_with_gpus_and_cpus_per_gpu():
    call = sbatch_call("train", {"gpu": 1})  # the rule's gpu: one with device cuda
    assert "--gpus=CHANGE_ME:1" in call and "--cpus-per-gpu=4" in call
    assert "--gres" not in call and "--cpus-per-task" not in call
    assert "-t 2880" in call and "--mem 16000" in call and "-A CHANGE_ME" in call
    assert "--gpus=CHANGE_ME:4" in sbatch_call("train", {"gpu": 4})  # data-parallel (train.gpus)
    assert "--gpus=CHANGE_ME:1" in sbatch_call("infer")


def test_plugin_submits_cpu_rules_without_gpus():
    call = sbatch_call("tiers")
    assert "--gpus" not in call and "--cpus-per-task=2" in call
    assert "-t 120" in call and "--mem 8000" in call
    assert "-t 60" in sbatch_call("degrade") and "--mem 4000" in sbatch_call("degrade")  # defaults


def test_local_profile_limits_concurrent_gpu_jobs():
    profile = yaml.safe_load(LOCAL.read_text())
    assert profile["resources"]["gpu"] >= 1
    assert "executor" not in profile

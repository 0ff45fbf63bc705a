"""The SLURM profile against a real SLURM: the smoke pipeline submitted through
profiles/slurm (snakemake-executor-plugin-slurm) ends with exactly the outputs of a local run.

Needs the one-node test cluster of `.ci/slurm-up.sh` (ClusterName refsr-ci: munge,
slurmctld, slurmd, two stand-in GPUs of type "testgpu"); `.ci/run` starts it and sets
REFSR_REQUIRE_SLURM=1, which turns the skip into a failure. Elsewhere the test is skipped,
and it never submits to any other cluster.

What it checks:
- the profile as shipped, with only what the README tells users to edit (account,
  partition, GPU type; CPUs per GPU sized to this 2-CPU node) and this cluster's lack of
  accounting (status through squeue), runs every job of the smoke DAG as an sbatch job;
- the GPU rules are submitted with --gpus=testgpu:N --cpus-per-gpu=1 (SLURM records
  TresPerJob=gres:gpu:testgpu:N), and srresnet's training, given 2 GPUs (train.gpus),
  trains under torchrun with two processes inside its SLURM job;
- checkpoints (every tensor), SR images (bytes), similarity tiers and evaluation CSVs equal
  those of a local run (profiles/local, same GPU counts: CPU runs are deterministic).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from refsr.core.config import defaults
from refsr.data.layout import EVAL_LEVELS
from refsr.models import registry
from refsr.models.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
TEST_CLUSTER = "refsr-ci"

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _run(*cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, **kw)


def slurm_cluster() -> dict:
    """Partition and GPUs of the one-node test cluster; skip (or fail, when CI requires it)
    without one."""
    reason = None
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        reason = "no SLURM client (sbatch); .ci/slurm-up.sh installs and starts a test cluster"
    elif _run("scontrol", "ping", timeout=30).returncode != 0:
        reason = "no slurmctld answers; .ci/slurm-up.sh DIR starts a one-node test cluster"
    else:
        config = _run("scontrol", "show", "config", timeout=30).stdout
        name = re.search(r"^ClusterName\s*=\s*(\S+)", config, re.M)
        if not name or name.group(1) != TEST_CLUSTER:
            reason = f"the SLURM cluster here is not the {TEST_CLUSTER} test cluster of .ci/slurm-up.sh"
    if reason:
        if os.environ.get("REFSR_REQUIRE_SLURM") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    partition = _run("sinfo", "-h", "-o", "%P").stdout.split()[0].rstrip("*")
    gres = re.search(r"gpu:(\w+):(\d+)", _run("sinfo", "-h", "-o", "%G").stdout)
    return {"partition": partition, "gpu_model": gres.group(1) if gres else None,
            "gpus": int(gres.group(2)) if gres else 0}


def slurm_profile(dst: Path, cluster: dict) -> Path:
    """profiles/slurm with the values a user edits filled in for the test cluster."""
    profile = yaml.safe_load((ROOT / "profiles/slurm/profile.yaml").read_text())
    profile["set-resources"] = {rule: dict(res) for rule, res in profile["set-resources"].items()}
    assert profile["default-resources"]["slurm_account"] == "CHANGE_ME"
    profile["default-resources"].update(slurm_account="refsr-ci", slurm_partition=cluster["partition"])
    for res in profile["set-resources"].values():
        if "gpu_model" not in res:
            continue
        if cluster["gpus"]:
            res.update(gpu_model=cluster["gpu_model"], cpus_per_gpu=1)  # a 2-CPU node
        else:  # what the profile says to do on a cluster without GPUs
            for key in ("gpu", "gpu_model", "cpus_per_gpu"):
                res.pop(key)
    # No job accounting on this cluster: job states come from squeue; check them often.
    profile["slurm-status-command"] = "squeue"
    profile["slurm-init-seconds-before-status-checks"] = 2
    dst.mkdir(parents=True)
    (dst / "profile.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return dst


def local_profile(dst: Path, cluster: dict) -> Path:
    """profiles/local with the same GPU counts as the SLURM run (so the same code paths run)."""
    profile = yaml.safe_load((ROOT / "profiles/local/profile.yaml").read_text())
    profile["cores"] = 2
    if cluster["gpus"] >= 2:
        profile["resources"] = {"gpu": 2}
    dst.mkdir(parents=True)
    (dst / "profile.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return dst


def gpu_config(dst: Path, cluster: dict) -> Path:
    """Training GPUs per model on this cluster (the smoke config runs on the CPU; the stand-in
    GPUs exercise the requests): srresnet data-parallel on 2, every other trainable model of
    the registry on 1 (a train job left at gpu 0 would keep the profile's gpu_model, which
    SLURM refuses: profiles/slurm says so)."""
    gpus = {m: 2 if m == "srresnet" else 1 for m in registry.trainable()} if cluster["gpus"] >= 2 else {}
    dst.write_text(yaml.safe_dump({"train": {"gpus": gpus}}))
    return dst


def run_pipeline(wd: Path, profile: Path, timeout: int, cluster: dict) -> str:
    wd.mkdir(parents=True)
    shutil.copy(ROOT / "config.yaml", wd / "config.yaml")
    shutil.copytree(ROOT / "configs", wd / "configs")
    extra = gpu_config(wd / "gpus.yaml", cluster)
    proc = _run(SNAKEMAKE, "--profile", str(profile), "-s", str(ROOT / "workflow/Snakefile"),
                "--configfile", "configs/smoke.yaml", str(extra), cwd=wd, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-20000:]
    return out


def _files(root: Path, pattern: str) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.glob(pattern)) if p.is_file()}


def test_smoke_pipeline_on_slurm_equals_local_run(tmp_path, vgg_weights):
    cluster = slurm_cluster()
    slurm_out = run_pipeline(tmp_path / "slurm", slurm_profile(tmp_path / "slurm-profile", cluster),
                             timeout=2400, cluster=cluster)
    run_pipeline(tmp_path / "local", local_profile(tmp_path / "local-profile", cluster), timeout=1200,
                 cluster=cluster)
    slurm, local = tmp_path / "slurm/results", tmp_path / "local/results"

    # every job went through sbatch
    submitted = dict(re.findall(r"has been submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+?)/", slurm_out))
    jobs = {rule: [j for j, r in submitted.items() if r == rule] for rule in set(submitted.values())}
    assert {"build_dataset", "degrade", "tiers", "correspondence", "train", "infer", "evaluate",
            "tables", "figures"} <= set(jobs), jobs
    n_models, n_trained = len(defaults("models")), len([m for m in defaults("models") if registry.get(m).trainable])
    assert len(jobs["train"]) == n_trained and len(jobs["infer"]) == n_models and len(jobs["evaluate"]) == n_models
    if cluster["gpus"]:
        train_jobs = [_run("scontrol", "show", "job", job_id).stdout for job_id in jobs["train"]]
        for info in train_jobs:
            assert "CpusPerTres=gres:gpu:1" in info, info
        tres = sorted(re.search(r"TresPerJob=gres:gpu:\w+:(\d)", i).group(1) for i in train_jobs)
        assert tres == ["1"] * (n_trained - 1) + ["2"], tres  # srresnet on 2 GPUs, the others on 1
        job = _run("scontrol", "show", "job", jobs["infer"][-1]).stdout
        assert f"TresPerJob=gres:gpu:{cluster['gpu_model']}:1" in job, job
        train_log = (tmp_path / "slurm/results/logs/train/srresnet.log").read_text()
        assert "--nproc-per-node=2" in train_log and "all 2 ranks hold identical weights" in train_log

    # the same outputs as the local run
    checkpoints = _files(slurm, "models/*/checkpoint.pt")
    assert len(checkpoints) == n_trained and checkpoints.keys() == _files(local, "models/*/checkpoint.pt").keys()
    for name, path in checkpoints.items():
        a, _ = load_checkpoint(path)
        b, _ = load_checkpoint(local / name)
        for (key, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert torch.equal(x, y), f"{name}: {key}"
    for pattern in ("sr/**/*.png", "tiers/*.csv", "eval/**/*.csv"):
        files = _files(slurm, pattern)
        assert files and files.keys() == _files(local, pattern).keys(), pattern
        for name, path in files.items():
            assert path.read_bytes() == (local / name).read_bytes(), name
    assert len(_files(slurm, "sr/**/*.png")) == n_models * 3 * len(EVAL_LEVELS)  # models x test images x levels


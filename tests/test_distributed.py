"""Data-parallel training under torchrun, on CPU: gloo backend, two processes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from conftest import arch, tiny_training_set, train_config

from refsr.core.errors import RefsrError
from refsr.models.checkpoint import arch_config, build_model, load_checkpoint, save_checkpoint
from refsr.training.config import TrainConfig
from refsr.training.distributed import launch
from refsr.training.parallel import DistContext
from refsr.training.trainer import train_model

ARCH = arch_config("srresnet", arch(n_blocks=1, n_feats=8))
DISC = {"n_feats": 4, "n_down": 2, "n_hidden": 8}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A tiny embedded dataset with its LR images (conftest.tiny_training_set)."""
    return tiny_training_set(tmp_path_factory.mktemp("ddp") / "tiny")


def _cfg(model: str, **kw) -> TrainConfig:
    base = dict(arch=ARCH, loss={"perceptual_layer": "relu3_1"}, iterations=4,
                batch_size=2, disc=DISC, checkpoint_every=2, log_every=1)
    return train_config(model, **{**base, **kw})


def _args(tiny: Path, out: Path, init: str | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    return dict(manifest=str(tiny / "manifest.csv"), lr_dir=str(tiny / "lr"), corr_dir=None,
                init_ckpt=init, state_path=str(out / "state" / "state.pt"),
                checkpoint=str(out / "model" / "checkpoint.pt"), log_csv=str(out / "model" / "train_log.csv"))


def _weights(path) -> dict:
    model, _ = load_checkpoint(path)
    return model.state_dict()


def test_two_processes_match_one(tiny, tmp_path, caplog):
    """srresnet (L1 only): averaging the two half-batch gradients is the full-batch gradient,
    so two ranks end where one process ends, up to float rounding; rank 0 alone writes."""
    cfg = _cfg("srresnet")
    with caplog.at_level("INFO", logger="refsr"):
        launch(2, cfg, threads=2, **_args(tiny, tmp_path / "ddp"))
    train_model(cfg, **_args(tiny, tmp_path / "single"))

    ddp, single = _weights(tmp_path / "ddp/model/checkpoint.pt"), _weights(tmp_path / "single/model/checkpoint.pt")
    for key in single:
        torch.testing.assert_close(ddp[key], single[key], rtol=1e-4, atol=1e-5, msg=key)
    text = caplog.text  # the workers' output, relayed by the launcher
    assert "all 2 ranks hold identical weights" in text
    assert "rank0 INFO refsr.training.trainer: srresnet it 4/4" in text and "rank1" not in text  # rank 1: warnings only
    # one set of outputs, written by rank 0; the finished run leaves no training state behind
    assert sorted(p.name for p in (tmp_path / "ddp").rglob("*") if p.is_file()) == [
        "checkpoint.pt", "train_log.csv"]
    with open(tmp_path / "ddp/model/train_log.csv") as fh:
        assert [int(r["iteration"]) for r in csv.DictReader(fh)] == [1, 2, 3, 4]
    assert torch.load(tmp_path / "ddp/model/checkpoint.pt", weights_only=True)["processes"] == 2


def test_two_processes_with_critic_agree(tiny, tmp_path, vgg_weights, caplog):
    """srgan: perceptual + WGAN-GP (a double backward): the critic's gradients are averaged too,
    and both ranks end with identical generator weights (checked inside the run)."""
    torch.manual_seed(1)
    init = tmp_path / "srresnet.pt"
    save_checkpoint(init, build_model("srresnet", ARCH), "srresnet", ARCH)
    cfg = _cfg("srgan", iterations=3)
    with caplog.at_level("INFO", logger="refsr"):
        launch(2, cfg, threads=2, **_args(tiny, tmp_path / "ddp", str(init)))
    assert "all 2 ranks hold identical weights" in caplog.text
    # rank 0 saved the state (generator and critic) along the way and removed it at the end
    assert "srgan finished: removed its training state" in caplog.text
    assert not (tmp_path / "ddp/state/state.pt").exists()


def test_batch_must_split_evenly(tiny, tmp_path):
    with pytest.raises(RefsrError, match="train.batch_size"):
        launch(2, _cfg("srresnet", batch_size=3), **_args(tiny, tmp_path))


def test_shard_takes_every_world_th_index():
    ranks = [DistContext(rank=r, world=2, local_rank=r) for r in range(2)]
    assert [c.shard([5, 1, 4, 2]) for c in ranks] == [[5, 4], [1, 2]]


LAUNCHER = """
import json, sys, types
from refsr.training.distributed import launch
from refsr.stages.runner import run
from refsr.training.config import TrainConfig

cfg, args = TrainConfig(**json.loads(sys.argv[1])), json.loads(sys.argv[2])
run(lambda smk: launch(2, cfg, threads=2, **args), types.SimpleNamespace(log=[], threads=2, rule="train"))
"""


def test_sigterm_reaches_every_rank_and_rank0_saves(tiny, tmp_path):
    """SIGTERM to the launcher (what SLURM sends on preemption) -> torchrun -> both workers:
    they stop after the same iteration, rank 0 saves the state, the job exits non-zero."""
    import json
    import signal
    import subprocess
    import sys
    import time
    from dataclasses import asdict

    cfg = _cfg("srresnet", iterations=100_000, checkpoint_every=50_000)
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, json.dumps(asdict(cfg)),
                             json.dumps(_args(tiny, tmp_path))], stderr=subprocess.PIPE, text=True)
    lines, deadline = [], time.monotonic() + 180
    for line in proc.stderr:
        lines.append(line)
        if "rank0 INFO refsr.training.trainer: srresnet it 3/" in line:
            proc.send_signal(signal.SIGTERM)
            break
        assert time.monotonic() < deadline, "".join(lines)
    out = "".join(lines) + proc.stderr.read()
    assert proc.wait(timeout=120) != 0, out
    assert "rank0 ERROR refsr: " in out and "SIGTERM received: srresnet stopped at iteration" in out, out
    assert "SIGTERM received: the 2 workers of train_srresnet stopped" in out, out  # the launcher's line
    state = torch.load(tmp_path / "state/state.pt", weights_only=True)
    assert 3 <= state["iteration"] < 1000 and len(state["rows"]) == state["iteration"]
    assert not (tmp_path / "model/checkpoint.pt").exists()

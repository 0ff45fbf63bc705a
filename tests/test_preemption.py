"""Preemption-safe training: SIGTERM / SIGUSR1 save the state and fail the job; a re-run resumes
and ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import arch, tiny_training_set, train_config

from refsr.core.errors import RefsrError
from refsr.models.checkpoint import load_checkpoint
from refsr.training.config import TrainConfig
from refsr.training.preemption import Preempted, preemption_signals
from refsr.training.trainer import train_model

ITERATIONS = 12
CFG = dataclasses.asdict(train_config("srresnet", arch=arch(n_blocks=1, n_feats=8),
                                      loss={"perceptual_layer": "relu3_1"}, iterations=ITERATIONS,
                                      batch_size=2, checkpoint_every=10, log_every=1))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A tiny embedded dataset with its LR images (conftest.tiny_training_set)."""
    return tiny_training_set(tmp_path_factory.mktemp("preempt") / "tiny")


def _args(tiny: Path, out: Path) -> dict:
    return dict(manifest=str(tiny / "manifest.csv"), lr_dir=str(tiny / "lr"), corr_dir=None,
                init_ckpt=None, state_path=str(out / "state.pt"),
                checkpoint=str(out / "checkpoint.pt"), log_csv=str(out / "train_log.csv"))


# The rule's code path (refsr.stages.runner.run around train_model), each step slowed down so
# that the signal arrives mid-run; the sleep does not change any number.
CHILD = textwrap.dedent("""
    import json, sys, time, types
    import refsr.training.trainer as train
    from refsr.stages.runner import run
    from refsr.training.config import TrainConfig

    cfg, args = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    step = train.Trainer.step
    def slow_step(self, it):
        time.sleep(0.1)
        return step(self, it)
    train.Trainer.step = slow_step
    smk = types.SimpleNamespace(log=[sys.argv[3]], threads=int(sys.argv[4]), rule="train")
    run(lambda smk: train.train_model(TrainConfig(**cfg), **args), smk)
""")


def _interrupt(tiny: Path, out: Path, sig: int) -> subprocess.CompletedProcess:
    """Start training in a child process, send ``sig`` once it logged iteration 3."""
    import json

    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(CFG), json.dumps(_args(tiny, out)),
                             str(out / "train.log"), str(torch.get_num_threads())],  # as here: same sums
                            stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        lines.append(line)
        if " it 3/" in line:
            proc.send_signal(sig)
            break
        assert time.monotonic() < deadline, "".join(lines)
    rest = proc.stderr.read()
    proc.wait(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "", "".join(lines) + rest)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_signal_saves_state_fails_and_resume_matches_uninterrupted(sig, tiny, tmp_path):
    done = _interrupt(tiny, tmp_path / "interrupted", sig)
    assert done.returncode != 0, done.stderr
    assert f"{signal.Signals(sig).name} received" in done.stderr
    assert "a re-run resumes from it" in (tmp_path / "interrupted" / "train.log").read_text()
    state = torch.load(tmp_path / "interrupted" / "state.pt", weights_only=True)
    assert 3 <= state["iteration"] < CFG["checkpoint_every"]  # saved on the signal, not periodically
    assert len(state["rows"]) == state["iteration"]
    assert not (tmp_path / "interrupted" / "checkpoint.pt").exists()  # no final output

    resumed = train_model(TrainConfig(**CFG), **_args(tiny, tmp_path / "interrupted"))
    assert resumed.iteration == ITERATIONS
    (tmp_path / "straight").mkdir()
    straight = train_model(TrainConfig(**CFG), **_args(tiny, tmp_path / "straight"))
    a, _ = load_checkpoint(tmp_path / "interrupted" / "checkpoint.pt")
    b, _ = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    for (key, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), key
    assert [r["total"] for r in resumed.rows] == [r["total"] for r in straight.rows]


def test_preempted_is_a_one_line_refsr_error():
    assert issubclass(Preempted, RefsrError)


def test_preemption_signals_restores_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with preemption_signals() as stop_requested:
        assert stop_requested() == 0
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(100):  # the handler runs at the next bytecode boundary
            if stop_requested():
                break
            time.sleep(0.01)
        assert stop_requested() == signal.SIGUSR1
    assert signal.getsignal(signal.SIGTERM) is before

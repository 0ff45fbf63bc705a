"""Data-parallel training over several GPUs (or CPU processes) under ``torchrun``.

The ``train`` rule given more than one GPU (``resources: gpu=N``, e.g. through
``set-resources`` in a profile) calls :func:`launch`, which runs
``torchrun --standalone --nproc-per-node N -m refsr.training.distributed SPEC`` and waits for it.
Each of the N workers joins the process group (NCCL on CUDA, gloo on CPU), takes rank r's
slice ``r::N`` of every batch (so N processes see the same samples per iteration as one
would) and runs :func:`refsr.training.trainer.train_model` with a :class:`DistContext`.

Gradients are averaged with one flat all-reduce per backward pass — what
``DistributedDataParallel`` does, without its module wrapper: the WGAN-GP critic needs a
double backward (which the wrapper does not support), and the checkpoints keep the plain
module's keys. Rank 0 alone writes the training state and the checkpoint, and logs
progress; the other ranks log warnings only. The launcher relays the workers' output to its
own log (the rule's log file has one writer). At the end the ranks' weights are compared.

Preemption: SIGTERM / SIGUSR1 reaching the launcher are passed to ``torchrun`` as SIGTERM,
which passes them to the workers; they agree on the iteration to stop at, rank 0 saves the
state, and the job fails so that a retry resumes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from refsr.core.errors import RefsrError
from refsr.training.config import TrainConfig
from refsr.training.parallel import DistContext
from refsr.training.preemption import PREEMPTION_SIGNALS, Preempted
from refsr.training.trainer import train_model

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- launcher
def launch(nproc: int, cfg, threads: int = 1, **kwargs) -> None:
    """Run ``train_model(cfg, **kwargs)`` in ``nproc`` processes under ``torchrun``.

    ``cfg`` is the :class:`~refsr.train_config.TrainConfig`; ``threads`` CPU threads are
    shared among the processes. What the workers print is logged here, line by line. Raises
    :class:`RefsrError` when the run fails (including after a preemption signal).
    """
    if nproc < 2:
        raise RefsrError("launch", f"data-parallel training needs at least 2 processes, got {nproc}")
    if cfg.batch_size % nproc:
        raise RefsrError("config key train.batch_size",
                         f"{cfg.batch_size} does not split evenly over {nproc} GPUs/processes")
    if cfg.device == "cuda":
        import torch

        if torch.cuda.device_count() < nproc:
            raise RefsrError(f"train_{cfg.model}", f"given {nproc} GPUs but only "
                                                   f"{torch.cuda.device_count()} are visible")
    spec = {"cfg": asdict(cfg), "kwargs": kwargs}
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, threads // nproc))}
    with tempfile.TemporaryDirectory(prefix="refsr-torchrun-") as tmp:
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
               f"--nproc-per-node={nproc}", "-m", "refsr.training.distributed", str(spec_path)]
        log.info("data-parallel training of %s: %s", cfg.model, " ".join(cmd))
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        with _forward_signals_to(proc) as received:
            for line in proc.stdout:
                log.info("| %s", line.rstrip())
            status = proc.wait()
    if status != 0 and received:
        raise Preempted(kwargs.get("state_path", f"train_{cfg.model}"),
                        f"{signal.Signals(received[0]).name} received: the {nproc} workers of "
                        f"train_{cfg.model} stopped; a re-run resumes from the saved training state")
    if status != 0:
        raise RefsrError(f"train_{cfg.model}", f"torchrun with {nproc} processes exited with status "
                                               f"{status} (the messages above say why)")


@contextlib.contextmanager
def _forward_signals_to(proc: subprocess.Popen) -> Iterator[list[int]]:
    """Pass SIGTERM / SIGUSR1 to ``proc`` as SIGTERM (torchrun passes SIGTERM on to its workers
    but would die on SIGUSR1) and keep waiting for it to save and exit; yields the list of
    signals received."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def forward(signum, _frame):
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in PREEMPTION_SIGNALS}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# --------------------------------------------------------------------------- worker
def _setup_worker_logging(rank: int) -> None:
    """To stderr (relayed by the launcher): rank 0 logs progress, other ranks warnings only."""
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, force=True,
                        format=f"rank{rank} %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Worker entry point (``torchrun ... -m refsr.training.distributed SPEC``)."""
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(args[0]).read_text())
    cfg = TrainConfig(**spec["cfg"])
    _setup_worker_logging(int(os.environ.get("RANK", 0)))
    ctx = DistContext.init(cfg.device)
    try:
        train_model(cfg, dist=ctx, **spec["kwargs"])
    except RefsrError as err:
        logging.getLogger("refsr").error("%s", err)
        return 1
    finally:
        ctx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

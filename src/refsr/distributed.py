"""Data-parallel training over several GPUs (or CPU processes) under ``torchrun``.

A ``train_{model}`` rule given more than one GPU (``resources: gpu=N``, e.g. through
``set-resources`` in a profile) calls :func:`launch`, which runs
``torchrun --standalone --nproc-per-node N -m refsr.distributed SPEC`` and waits for it.
Each of the N workers joins the process group (NCCL on CUDA, gloo on CPU), takes rank r's
slice ``r::N`` of every batch (so N processes see the same samples per iteration as one
would) and runs :func:`refsr.train.run_training` with a :class:`DistContext`.

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
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import RefsrError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """This process's place in a data-parallel run, and the collectives training needs."""

    rank: int
    world: int
    local_rank: int

    @classmethod
    def init(cls, device: str) -> DistContext:
        """Join the process group that ``torchrun`` set up (RANK, WORLD_SIZE, MASTER_* ...)."""
        import torch
        import torch.distributed as dist

        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        if device == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), local_rank)

    def device_for(self, device: str):
        import torch

        return torch.device("cuda", self.local_rank) if device == "cuda" else torch.device("cpu")

    def shard(self, indices: list[int]) -> list[int]:
        """This rank's part of a batch (the batch size is a multiple of the world size)."""
        return indices[self.rank :: self.world]

    def average_gradients(self, module) -> None:
        """Replace each parameter's gradient by its mean over the ranks (one flat all-reduce)."""
        import torch
        import torch.distributed as dist

        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def mean_of(self, row: dict[str, float]) -> dict[str, float]:
        """Per-iteration log values averaged over the ranks (every rank has the same keys)."""
        import torch
        import torch.distributed as dist

        values = torch.tensor(list(row.values()), dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(values)
        return dict(zip(row, (values / self.world).tolist(), strict=True))

    def max_int(self, value: int) -> int:
        import torch
        import torch.distributed as dist

        t = torch.tensor([int(value)], dtype=torch.int64, device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def check_replicas(self, module) -> None:
        """Raise unless every rank holds exactly the same parameters and buffers."""
        import torch
        import torch.distributed as dist

        h = hashlib.sha256()
        for key, value in module.state_dict().items():
            h.update(key.encode())
            h.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        mine = torch.frombuffer(bytearray(h.digest()), dtype=torch.uint8).to(self._comm_device())
        everyone = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(everyone, mine)
        digests = {bytes(d.cpu().tolist()).hex()[:16] for d in everyone}
        if len(digests) != 1:
            raise RefsrError("data-parallel training", f"the {self.world} ranks ended with different "
                                                       f"weights (digests {sorted(digests)})")
        log.info("all %d ranks hold identical weights (sha256 %s)", self.world, digests.pop())

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()

    def _comm_device(self):
        import torch.distributed as dist

        return self.device_for("cuda" if dist.get_backend() == "nccl" else "cpu")


# --------------------------------------------------------------------------- launcher
def launch(nproc: int, cfg, threads: int = 1, **kwargs) -> None:
    """Run ``run_training(cfg, **kwargs)`` in ``nproc`` processes under ``torchrun``.

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
               f"--nproc-per-node={nproc}", "-m", "refsr.distributed", str(spec_path)]
        log.info("data-parallel training of %s: %s", cfg.model, " ".join(cmd))
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        with _forward_signals_to(proc) as received:
            for line in proc.stdout:
                log.info("| %s", line.rstrip())
            status = proc.wait()
    if status != 0 and received:
        from .train import Preempted

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
    from .train import PREEMPTION_SIGNALS

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
    """Worker entry point (``torchrun ... -m refsr.distributed SPEC``)."""
    from .train import run_training
    from .train_config import TrainConfig

    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(args[0]).read_text())
    cfg = TrainConfig(**spec["cfg"])
    _setup_worker_logging(int(os.environ.get("RANK", 0)))
    ctx = DistContext.init(cfg.device)
    try:
        run_training(cfg, dist=ctx, **spec["kwargs"])
    except RefsrError as err:
        logging.getLogger("refsr").error("%s", err)
        return 1
    finally:
        ctx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

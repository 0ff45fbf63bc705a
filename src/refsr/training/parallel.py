"""This process's place in a data-parallel training run, and the collectives the trainer uses.

Built by the workers that :mod:`refsr.training.distributed` starts under ``torchrun``; the
trainer receives it (or ``None`` for a single process) and needs nothing else from there.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

from refsr.core.errors import RefsrError

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

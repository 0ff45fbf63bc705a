"""What determines a training run, built from the pipeline config without importing torch
(the Snakefile uses it to give each train rule exactly its own parameters)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

SISR_MODELS = ("srresnet", "srgan")


@dataclass
class TrainConfig:
    """Everything that determines a training run (its fingerprint decides resumption)."""

    model: str
    arch: dict
    loss: dict
    iterations: int
    batch_size: int = 8
    lr: float = 1e-4
    seed: int = 0
    disc: dict = field(default_factory=dict)
    checkpoint_every: int = 100
    log_every: int = 10
    max_mb: float = 256
    device: str = "cpu"

    def fingerprint(self) -> str:
        keys = asdict(self)
        for volatile in ("checkpoint_every", "log_every", "device", "max_mb"):  # no effect on weights
            keys.pop(volatile)
        return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


def config_for(model: str, config: dict) -> TrainConfig:
    """The :class:`TrainConfig` of ``model`` from the (validated) pipeline config."""
    t = config["train"]
    arch = dict(config["arch"])
    if model in SISR_MODELS:
        arch.pop("n_blocks_transfer", None)
    return TrainConfig(model=model, arch=arch, loss=dict(config["loss"]),
                       iterations=int(t["iterations"][model]), batch_size=int(t["batch_size"]),
                       lr=float(t["lr"]), seed=int(config["seed"]), disc=dict(config["discriminator"]),
                       checkpoint_every=int(t["checkpoint_every"]), log_every=int(t["log_every"]),
                       max_mb=float(config["matching"]["max_mb"]), device=config["device"])


def train_params(model: str, config: dict) -> dict:
    """Plain-dict form of :func:`config_for` (Snakemake params)."""
    return asdict(config_for(model, config))

"""What determines a training run, built from the validated pipeline config without importing
torch (the workflow uses it to give each training job exactly its own parameters)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from refsr.models import registry

#: TrainConfig fields that do not change the trained weights (excluded from the fingerprint).
VOLATILE = ("checkpoint_every", "log_every", "device", "max_mb")


@dataclass
class TrainConfig:
    """Everything that determines a training run (its fingerprint decides resumption).

    Every field comes from the validated config (:func:`config_for`); there are no defaults
    here: the schema holds them.
    """

    model: str
    arch: dict
    loss: dict
    iterations: int
    batch_size: int
    lr: float
    seed: int
    disc: dict
    checkpoint_every: int
    log_every: int
    max_mb: float
    device: str

    def fingerprint(self) -> str:
        keys = asdict(self)
        for volatile in VOLATILE:
            keys.pop(volatile)
        return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


def config_for(model: str, config: Mapping) -> TrainConfig:
    """The :class:`TrainConfig` of ``model`` from the (validated) pipeline config."""
    t = config["train"]
    return TrainConfig(model=model, arch=registry.arch_config(model, config), loss=dict(config["loss"]),
                       iterations=int(t["iterations"][model]), batch_size=int(t["batch_size"]),
                       lr=float(t["lr"]), seed=int(config["seed"]), disc=dict(config["discriminator"]),
                       checkpoint_every=int(t["checkpoint_every"]), log_every=int(t["log_every"]),
                       max_mb=float(config["matching"]["max_mb"]), device=config["device"])


def train_params(model: str, config: Mapping) -> dict:
    """Plain-dict form of :func:`config_for` (Snakemake params)."""
    return asdict(config_for(model, config))

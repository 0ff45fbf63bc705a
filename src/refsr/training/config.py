"""What determines a training run, built from the validated pipeline config without importing
torch (the workflow uses it to give each training job exactly its own parameters)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from refsr.core.config import lookup
from refsr.models import registry

#: TrainConfig fields that are settings, not params (:data:`refsr.pipeline.jobs.SETTINGS`): how
#: often training logs and saves its state, and the stitching memory budget, change no weight,
#: so changing them re-runs nothing.
SETTINGS = ("checkpoint_every", "log_every", "max_mb")
#: TrainConfig fields left out of the resume fingerprint: the settings, and ``device`` (it can
#: change the weights in the last bits, but a run may move between machines).
VOLATILE = (*SETTINGS, "device")


@dataclass
class TrainConfig:
    """Everything that determines a training run (its fingerprint decides resumption).

    Every field comes from the validated config (:func:`config_for`); there are no defaults
    here: the schema holds them.
    """

    model: str
    recipe: str
    arch: dict
    loss: dict
    iterations: int
    batch_size: int
    lr: float
    seed: int
    disc: dict
    options: dict
    checkpoint_every: int
    log_every: int
    max_mb: float
    device: str

    def fingerprint(self) -> str:
        keys = asdict(self)
        for volatile in VOLATILE:
            keys.pop(volatile)
        return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


def loss_for(model: str, loss: Mapping, recipe: str | None = None) -> dict:
    """The keys of the config's ``loss`` section that ``model`` trains with: the weights of its
    terms (its registry entry's ``losses``), the perceptual layer if it has a perceptual term,
    the gradient-penalty weight if it has an adversarial one. Changing any other key leaves
    its training alone."""
    used = registry.get(model, recipe=recipe).losses
    keys = list(used)
    if "perceptual" in used:
        keys.append("perceptual_layer")
    if "adversarial" in used:
        keys.append("gp")
    return {k: loss[k] for k in keys}


#: Keys of the ``ttsr`` section its training loop reads (``init_iterations`` only with more
#: terms than reconstruction in recipe official: TTSR-rec has no reconstruction-only phase, and
#: recipe refsr's TTSR starts from the trained TTSR-rec instead); recipe refsr adds its
#: ``ttsr.refsr`` keys (the main network's learning-rate schedule).
TTSR_TRAIN_KEYS = ("lr_lte", "lr_critic", "critic_steps")
TTSR_REFSR_KEYS = ("lr", "lr_end")


def recipe_options(model: str, config: Mapping, recipe: str | None = None) -> dict:
    """The recipe's own training keys that ``model`` uses (the config's ``official`` section for
    recipe official: the MatConvNet VGG19 file if it needs a VGG, the texture weight map if it
    has a texture term, the learning-rate decay if it has a critic); ``{}`` for recipe refsr."""
    spec = registry.get(model, recipe=recipe)
    if spec.textures == "learned":  # TTSR: its own section, and the resizing of LR↑ and Ref↓↑
        ttsr = config["ttsr"]
        out = {k: ttsr[k] for k in TTSR_TRAIN_KEYS if "adversarial" in spec.losses or k == "lr_lte"}
        if spec.recipe == "refsr":
            out.update({k: float(ttsr["refsr"][k]) for k in TTSR_REFSR_KEYS})
        elif len(spec.losses) > 1:
            out["init_iterations"] = int(ttsr["init_iterations"])
        out["resize"] = config["resize"]
        return out
    if spec.recipe != "official":
        return {}
    official, out = config["official"], {}
    if spec.correspondence or {"perceptual", "texture"} & set(spec.losses):
        out["vgg19_mat"] = official["vgg19_mat"]
    if "texture" in spec.losses:
        out["texture_weight_map"] = bool(official["texture_weight_map"])
    if "adversarial" in spec.losses:
        out["lr_decay"] = official["lr_decay"]
    return out


def config_for(model: str, config: Mapping) -> TrainConfig:
    """The :class:`TrainConfig` of ``model`` from the (validated) pipeline config."""
    t = config["train"]
    spec = registry.spec_for(model, config)
    adversarial = "adversarial" in spec.losses
    critic = config["official"]["discriminator"] if spec.recipe == "official" else config["discriminator"]
    if spec.textures == "learned":
        critic = {}  # TTSR's released critic takes only the HR crop size, read from the data
    return TrainConfig(model=model, recipe=spec.recipe, arch=registry.arch_config(model, config),
                       loss=loss_for(model, lookup(config, spec.loss_section), spec.recipe),
                       iterations=int(t["iterations"][model]), batch_size=int(t["batch_size"]),
                       lr=float(t["lr"]), seed=int(config["seed"]),
                       disc=dict(critic) if adversarial else {},
                       options=recipe_options(model, config, spec.recipe),
                       checkpoint_every=int(t["checkpoint_every"]), log_every=int(t["log_every"]),
                       max_mb=float(config["matching"]["max_mb"]), device=config["device"])


def train_params(model: str, config: Mapping) -> dict:
    """What determines ``model``'s weights, as Snakemake params: :func:`config_for` without
    :data:`SETTINGS` (the stage adds those from :func:`refsr.pipeline.jobs.settings`)."""
    params = asdict(config_for(model, config))
    for key in SETTINGS:
        params.pop(key)
    return params

"""Shared fixtures: offline VGG19 weights, the repository root, tiny images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_VGG = ROOT.parent / "shared" / "weights" / "vgg19_imagenet_conv1_1-conv3_1.pth"

if "REFSR_VGG19_WEIGHTS" not in os.environ and SHARED_VGG.is_file():
    os.environ["REFSR_VGG19_WEIGHTS"] = str(SHARED_VGG)


@pytest.fixture(scope="session")
def vgg_weights() -> str:
    """Path of offline VGG19 (conv1_1..conv3_1) weights; skip when none are available."""
    path = os.environ.get("REFSR_VGG19_WEIGHTS")
    if not path or not Path(path).is_file():
        pytest.skip("no offline VGG19 weights (set REFSR_VGG19_WEIGHTS)")
    return path


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture
def rng() -> np.random.RandomState:
    return np.random.RandomState(0)


@pytest.fixture(scope="session")
def vgg(vgg_weights):
    """VGG19 up to relu3_1 with the offline weights (skips when there are none)."""
    from refsr.features.vgg import load_vgg19

    return load_vgg19(("relu1_1", "relu2_1", "relu3_1"))


# ----------------------------------------------------------------------------- config helpers
# Code receives validated config values (defaults from the schema); tests build theirs the
# same way, overriding only what they change.


def arch(**overrides) -> dict:
    """The schema's ``arch`` section with ``overrides``."""
    from refsr.core.config import defaults

    return {**defaults("arch"), **overrides}


def train_config(model: str, recipe: str = "refsr", **overrides):
    """:class:`~refsr.training.config.TrainConfig` of ``model`` in ``recipe`` from the schema's
    defaults, with fields replaced by ``overrides`` (``arch``/``loss``/``disc``/``options``
    dicts are merged)."""
    import dataclasses

    from refsr.core.config import validate
    from refsr.models import registry
    from refsr.training.config import config_for

    cfg = config_for(model, validate({"recipe": recipe}))
    for key in ("arch", "loss", "disc", "options"):
        if key in overrides:
            merged = {**getattr(cfg, key), **overrides.pop(key)}
            if key == "arch":
                merged = {k: merged[k] for k in registry.get(model, recipe=cfg.recipe).arch_keys}
            overrides[key] = merged
    return dataclasses.replace(cfg, **overrides)


def protocol(**overrides):
    """The default evaluation protocol with fields replaced by ``overrides``."""
    import dataclasses

    from refsr.core.config import defaults
    from refsr.evaluation.protocol import protocol_from_config

    return dataclasses.replace(protocol_from_config(defaults()), **overrides)

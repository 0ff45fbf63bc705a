"""Building a registered model, and its checkpoints.

A checkpoint is a ``torch.save``'d dict ``{"format": "refsr-checkpoint", "version": 1,
"model": name, "recipe": recipe, "arch_cfg": cfg, "state_dict": ..., **extra}``; ``arch_cfg`` holds every
architecture key the network takes (its registry entry's ``arch_keys``), so :func:`load_checkpoint`
rebuilds the model without any other file.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from refsr.core.atomic import atomic_path
from refsr.core.errors import RefsrError
from refsr.models import registry

CHECKPOINT_FORMAT = "refsr-checkpoint"
CHECKPOINT_VERSION = 1
_RESERVED = ("format", "version", "model", "recipe", "arch_cfg", "state_dict")


def architecture(name: str, recipe: str | None = None) -> type[nn.Module]:
    """The network class of registered model ``name`` (in ``recipe``; default: its default)."""
    spec = registry.get(name, recipe=recipe)
    if spec.architecture is None:
        raise RefsrError(name, f"{spec.label} has no network (nothing to build or train)")
    module, _, cls = spec.architecture.partition(":")
    return getattr(importlib.import_module(module), cls)


def arch_config(name: str, cfg: Mapping[str, Any], recipe: str | None = None) -> dict:
    """The keys of a (validated) architecture config section that model ``name``'s network
    takes; a one-line error for a missing one."""
    keys = registry.get(name, recipe=recipe).arch_keys
    missing = [k for k in keys if k not in cfg]
    if missing:
        raise RefsrError(f"{name} architecture config", f"missing key(s) {missing}")
    return {k: cfg[k] for k in keys}


def build_model(name: str, cfg: Mapping[str, Any], where: str = "model config",
                recipe: str | None = None) -> nn.Module:
    """Build registered model ``name`` (in ``recipe``) from its architecture config."""
    cls = architecture(name, recipe)
    try:
        return cls(**arch_config(name, cfg, recipe))
    except (TypeError, ValueError) as err:  # e.g. a damaged arch_cfg in a checkpoint
        raise RefsrError(where, f"cannot build {name}: {err}") from None


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    name: str,
    cfg: Mapping[str, Any] | None,
    extra: Mapping[str, Any] | None = None,
    recipe: str | None = None,
) -> None:
    """Atomically write ``model``'s weights with its name, recipe and architecture config.

    ``extra`` (e.g. step, optimiser state, discriminator state, metrics) is stored at
    the top level; it must hold only tensors, numbers, strings, bools, None and
    lists/tuples/dicts of them, because :func:`load_checkpoint` loads with
    ``weights_only=True``.
    """
    recipe = registry.get(name, recipe=recipe).recipe
    cfg = arch_config(name, cfg, recipe)
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(_RESERVED))
    if clash:
        raise ValueError(f"extra keys {clash} are reserved in a checkpoint")
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": name,
        "recipe": recipe,
        "arch_cfg": cfg,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load and sanity-check a checkpoint dict (no model built); one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise RefsrError(path, "checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for corrupt/truncated files
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise RefsrError(
            path, f"cannot read checkpoint (corrupt or truncated?): {type(e).__name__} {first}"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise RefsrError(path, "not a refsr checkpoint")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise RefsrError(
            path,
            f"checkpoint version {ckpt.get('version')!r} is not supported (expected {CHECKPOINT_VERSION})",
        )
    for key in ("model", "arch_cfg", "state_dict"):
        if key not in ckpt:
            raise RefsrError(path, f"not a refsr checkpoint (no {key!r})")
    return ckpt


def load_checkpoint(
    path: str | os.PathLike,
    expected: str | Iterable[str] | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[nn.Module, dict]:
    """Rebuild the model stored in ``path``; returns ``(model in eval mode, checkpoint dict)``.

    ``expected`` is a model name or several (e.g. ``("srresnet", "srgan")`` for SRNTT's
    content extractor). Raises a one-line :class:`RefsrError` naming the file for an
    unreadable/corrupt file, a file that is not a refsr checkpoint, a checkpoint of
    another model, or weights that do not fit the stored architecture.
    """
    ckpt = read_checkpoint(path, map_location)
    name = ckpt["model"]
    if expected is not None:
        allowed = (expected,) if isinstance(expected, str) else tuple(expected)
        if name not in allowed:
            want = allowed[0] if len(allowed) == 1 else " or ".join(allowed)
            raise RefsrError(path, f"checkpoint of model {name!r}, expected {want}")
    recipe = str(ckpt.get("recipe", registry.get(name, where=str(path)).recipe))
    registry.get(name, where=str(path), recipe=recipe)
    model = build_model(name, ckpt["arch_cfg"], where=f"{path} arch_cfg", recipe=recipe)
    load_weights(model, ckpt["state_dict"], where=path)
    model.to(map_location)
    model.eval()
    return model, ckpt


def load_weights(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], where: str | os.PathLike
) -> None:
    """``model.load_state_dict(state_dict)`` with one-line errors naming ``where``."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    if missing or unexpected:
        raise RefsrError(
            where,
            f"weights do not match the architecture: {len(missing)} missing (e.g. {missing[:1]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:1]})",
        )
    for k, v in own.items():
        if tuple(state_dict[k].shape) != tuple(v.shape):
            raise RefsrError(
                where,
                f"weight {k} has shape {tuple(state_dict[k].shape)}, expected {tuple(v.shape)}",
            )
    model.load_state_dict(state_dict)

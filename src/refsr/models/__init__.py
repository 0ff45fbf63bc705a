"""Networks (SRResNet, SRNTT, WGAN-GP critic), a name → model factory, and checkpoints.

Model names and what they build:

=========  =======  ==================================================
name       kind     architecture
=========  =======  ==================================================
srresnet   sisr     :class:`SRResNet` (trained with L1)
srgan      sisr     :class:`SRResNet` (+ perceptual + adversarial)
srntt_l2   refsr    :class:`SRNTT` (reconstruction loss only)
srntt      refsr    :class:`SRNTT` (all losses)
=========  =======  ==================================================

A checkpoint is a ``torch.save``'d dict ``{"format": "refsr-checkpoint", "version": 1,
"model": name, "arch_cfg": cfg, "state_dict": ..., **extra}``; ``arch_cfg`` is the
complete architecture config (defaults filled in), so :func:`load_checkpoint` rebuilds
the model without any other file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import atomic_path
from ..errors import RefsrError
from .discriminator import Discriminator
from .srntt import SRNTT, transfer_blocks
from .srresnet import SRResNet, count_parameters

MODEL_KINDS = {"srresnet": "sisr", "srgan": "sisr", "srntt_l2": "refsr", "srntt": "refsr"}

#: Architecture config keys and their defaults (the paper's sizes).
ARCH_DEFAULTS: dict[str, Any] = {
    "n_blocks": 16,
    "n_feats": 64,
    "n_blocks_transfer": [16, 8, 4],
    "residual_over_bicubic": True,
    "res_scale": 1.0,
}
_SISR_KEYS = ("n_blocks", "n_feats", "residual_over_bicubic", "res_scale")

CHECKPOINT_FORMAT = "refsr-checkpoint"
CHECKPOINT_VERSION = 1
_RESERVED = ("format", "version", "model", "arch_cfg", "state_dict")


def arch_config(
    name: str, cfg: Mapping[str, Any] | None = None, where: str = "model config"
) -> dict:
    """Validate ``cfg`` for model ``name`` and return it complete (defaults filled in).

    SISR models ignore ``n_blocks_transfer`` (it is dropped from the result).
    Unknown keys and bad values raise :class:`RefsrError` naming ``where``.
    """
    if name not in MODEL_KINDS:
        raise RefsrError(where, f"unknown model {name!r}; choose one of {sorted(MODEL_KINDS)}")
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(ARCH_DEFAULTS))
    if unknown:
        raise RefsrError(where, f"unknown key(s) {unknown}; allowed: {sorted(ARCH_DEFAULTS)}")
    out = {**ARCH_DEFAULTS, **cfg}
    for key in ("n_blocks", "n_feats"):
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < (1 if key == "n_feats" else 0):
            raise RefsrError(
                f"{where}.{key}",
                f"must be a {'positive' if key == 'n_feats' else 'non-negative'} integer, got {v!r}",
            )
    if not isinstance(out["residual_over_bicubic"], bool):
        raise RefsrError(
            f"{where}.residual_over_bicubic",
            f"must be true or false, got {out['residual_over_bicubic']!r}",
        )
    rs = out["res_scale"]
    if isinstance(rs, bool) or not isinstance(rs, (int, float)) or not rs > 0:
        raise RefsrError(f"{where}.res_scale", f"must be a positive number, got {rs!r}")
    out["res_scale"] = float(rs)
    if MODEL_KINDS[name] == "sisr":
        return {k: out[k] for k in _SISR_KEYS}
    tb = out["n_blocks_transfer"]
    ok = (isinstance(tb, int) and not isinstance(tb, bool)) or (
        isinstance(tb, (list, tuple))
        and len(tb) == 3
        and all(isinstance(b, int) and not isinstance(b, bool) for b in tb)
    )
    if not ok or min(transfer_blocks(tb)) < 0:
        raise RefsrError(
            f"{where}.n_blocks_transfer",
            f"must be a non-negative integer or a list of 3, got {tb!r}",
        )
    out["n_blocks_transfer"] = list(transfer_blocks(tb))
    return out


def build_model(
    name: str, cfg: Mapping[str, Any] | None = None, where: str = "model config"
) -> nn.Module:
    """Build model ``name`` (see :data:`MODEL_KINDS`) from an architecture config."""
    cfg = arch_config(name, cfg, where)
    if MODEL_KINDS[name] == "sisr":
        return SRResNet(**cfg)
    return SRNTT(**cfg)


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    name: str,
    cfg: Mapping[str, Any] | None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Atomically write ``model``'s weights with its name and architecture config.

    ``extra`` (e.g. step, optimiser state, discriminator state, metrics) is stored at
    the top level; it must hold only tensors, numbers, strings, bools, None and
    lists/tuples/dicts of them, because :func:`load_checkpoint` loads with
    ``weights_only=True``.
    """
    cfg = arch_config(name, cfg)
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(_RESERVED))
    if clash:
        raise ValueError(f"extra keys {clash} are reserved in a checkpoint")
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": name,
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
    model = build_model(name, ckpt["arch_cfg"], where=f"{path} arch_cfg")
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


__all__ = [
    "ARCH_DEFAULTS",
    "MODEL_KINDS",
    "SRNTT",
    "Discriminator",
    "SRResNet",
    "arch_config",
    "build_model",
    "count_parameters",
    "load_checkpoint",
    "load_weights",
    "read_checkpoint",
    "save_checkpoint",
]

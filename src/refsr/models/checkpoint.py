"""Building a registered model, and its checkpoints.

A checkpoint is a ``torch.save``'d dict ``{"format": "refsr-checkpoint", "version": 2,
"model": name, "recipe": recipe, "arch_cfg": cfg, "state_dict": ..., "digest": ..., **extra}``;
``arch_cfg`` holds every architecture key the network takes (its registry entry's ``arch_keys``),
so :func:`load_checkpoint` rebuilds the model without any other file.

Integrity: :func:`save_checkpoint` is the one writer of refsr checkpoints (training, the
importers of released weights, the benchmarks). It refuses non-finite weights and stores
``digest`` = SHA-256 of every value of the checkpoint (:func:`content_digest`: tensors by
dtype, shape and bytes, other values by their ``repr``, keys in sorted order).
:func:`read_checkpoint` recomputes and compares it and rejects non-finite weights, so a
damaged file (torch's zip format does not check its stored tensors) is a one-line error,
never an image. Version 1 files (written before the digest) are still read, with a
warning, and only their finiteness is checked; ``refsr import-weights refsr OLD --out DIR``
rewrites one as version 2.
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import logging
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from refsr.core.atomic import atomic_path
from refsr.core.errors import RefsrError, os_reason
from refsr.models import registry

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "refsr-checkpoint"
CHECKPOINT_VERSION = 2
#: Versions :func:`read_checkpoint` accepts; 1 has no digest.
READABLE_VERSIONS = (1, 2)
DIGEST_KEY = "digest"
#: Top-level keys :func:`save_checkpoint` writes itself (``extra`` may not use them).
RESERVED_KEYS = ("format", "version", "model", "recipe", "arch_cfg", "state_dict", DIGEST_KEY)


def _feed(h, value: Any, path: str) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous().reshape(-1)
        h.update(f"{path}|tensor|{value.dtype}|{tuple(value.shape)}|".encode())
        h.update(memoryview(t.view(torch.uint8).numpy()))
    elif isinstance(value, Mapping):
        h.update(f"{path}|map|{len(value)}|".encode())
        for key in sorted(value, key=repr):
            _feed(h, value[key], f"{path}/{key!r}")
    elif isinstance(value, (list, tuple)):
        h.update(f"{path}|{type(value).__name__}|{len(value)}|".encode())
        for i, item in enumerate(value):
            _feed(h, item, f"{path}/{i}")
    else:
        h.update(f"{path}|{type(value).__name__}|{value!r}|".encode())


def content_digest(obj: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of everything in ``obj`` but its ``digest`` key: tensors by dtype, shape
    and raw bytes, other values by type and ``repr``, mapping keys sorted (stable across
    ``torch.save``/``torch.load``)."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in obj.items() if k != DIGEST_KEY}, "")
    return h.hexdigest()


def nonfinite_weights(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, int, int] | None:
    """``(name, non-finite count, size)`` of the first floating tensor holding NaN or
    infinity, or ``None`` when every weight is finite."""
    for key, t in state_dict.items():
        if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()):
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                return key, bad, t.numel()
    return None


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
    ``weights_only=True``. Non-finite weights are refused (one-line error, nothing written);
    the checkpoint's :func:`content_digest` is stored under ``digest``.
    """
    recipe = registry.get(name, recipe=recipe).recipe
    cfg = arch_config(name, cfg, recipe)
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(RESERVED_KEYS))
    if clash:
        raise ValueError(f"extra keys {clash} are reserved in a checkpoint")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    bad = nonfinite_weights(state)
    if bad is not None and extra.get("imported_from"):  # released weights: no training diverged
        raise RefsrError(extra["imported_from"], f"parameter {bad[0]} (of {name}) has {bad[1]} non-finite "
                                                 f"value(s) (NaN or infinity) of {bad[2]}; not converted")
    if bad is not None:
        raise RefsrError(path, f"not saved: weight {bad[0]} has {bad[1]} non-finite value(s) "
                               f"(NaN or infinity) of {bad[2]}; the {name} model diverged")
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": name,
        "recipe": recipe,
        "arch_cfg": cfg,
        "state_dict": state,
        **extra,
    }
    ckpt[DIGEST_KEY] = content_digest(ckpt)
    with atomic_path(path) as tmp:
        try:
            torch.save(ckpt, tmp)
        except RuntimeError as err:  # torch's zip writer: "PytorchStreamWriter failed writing file ..."
            if "PytorchStreamWriter" not in str(err) and "inline_container" not in str(err):
                raise
            free = _free_mb(tmp.parent)
            raise RefsrError(path, f"cannot write the checkpoint ({str(err).split('. ', 1)[-1].strip()[:120]}"
                                   f"{f'; {free:.0f} MB free on its disk' if free is not None else ''})") from None


def _free_mb(folder: Path) -> float | None:
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize / 2**20


def check_file(path: Path, what: str) -> None:
    """A one-line error unless ``path`` is a readable regular file: not found, a directory, a
    symlink loop (or another reason of the system), not a regular file."""
    try:
        st = Path(path).stat()
    except OSError as err:
        if err.errno == errno.ENOENT:
            raise RefsrError(path, f"{what} not found") from None
        raise RefsrError(path, f"cannot open the {what} ({os_reason(err)})") from None
    if stat.S_ISDIR(st.st_mode):
        raise RefsrError(path, f"is a directory, expected a {what} file")
    if not stat.S_ISREG(st.st_mode):
        raise RefsrError(path, f"is not a regular file, expected a {what} file")


def _to_device(value: Any, device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, device) for v in value)
    return value


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load and check a checkpoint dict (no model built): format, version, digest, finite
    weights; one-line errors naming the file."""
    path = Path(path)
    check_file(path, "checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt/truncated files
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise RefsrError(
            path, f"cannot read checkpoint (corrupt or truncated?): {type(e).__name__} {first}"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise RefsrError(path, "not a refsr checkpoint")
    version = ckpt.get("version")
    if version not in READABLE_VERSIONS:
        raise RefsrError(
            path,
            f"checkpoint version {version!r} is not supported (expected {CHECKPOINT_VERSION})",
        )
    for key in ("model", "arch_cfg", "state_dict"):
        if key not in ckpt:
            raise RefsrError(path, f"not a refsr checkpoint (no {key!r})")
    if not isinstance(ckpt["state_dict"], Mapping):
        raise RefsrError(path, "not a refsr checkpoint (state_dict is not a mapping)")
    if version == 1:
        log.warning("%s: checkpoint version 1 has no integrity digest; only the finiteness of its "
                    "weights is checked (refsr import-weights refsr FILE --out DIR rewrites it as "
                    "version %d)", path, CHECKPOINT_VERSION)
    elif ckpt.get(DIGEST_KEY) != content_digest(ckpt):
        what = "has no digest" if DIGEST_KEY not in ckpt else "its digest does not match its contents"
        raise RefsrError(path, f"integrity check failed: {what} (the file is damaged or was modified "
                               "after refsr wrote it)")
    bad = nonfinite_weights(ckpt["state_dict"])
    if bad is not None:
        raise RefsrError(path, f"weight {bad[0]} has {bad[1]} non-finite value(s) (NaN or infinity) "
                               f"of {bad[2]}: the checkpoint is unusable")
    if torch.device(map_location).type != "cpu":
        ckpt = _to_device(ckpt, map_location)
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

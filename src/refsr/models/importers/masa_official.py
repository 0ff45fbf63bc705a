"""Source ``masa-official``: the released MASA-SR weights (dvlab-research/MASA-SR, commit 80d1bd8:
``pretrained_weights/masa_rec.pth``, ``masa.pth``) → refsr checkpoints of
:class:`refsr.models.masa.MASA` (model ``masa_rec`` / ``masa``, recipe ``official``).

The released trainer saves ``net.state_dict()`` (DataParallel unwrapped; its ``.cpu()`` branch
never runs, so a GPU-trained file holds CUDA tensors: read here with ``map_location="cpu"``), a
plain dict of 210 ``enc.*`` / ``decoder.*`` tensors. The released loader strips a leading
``module.`` and loads strictly; so does this importer: every key of the released network, no
other, every shape (a file that does not fit is one line naming it and its first offending
key). Both files hold the same architecture; the file name says which model it is (``masa.pth``
→ ``masa``, ``masa_rec.pth`` → ``masa_rec``, any case); ``model=`` names it for another name.

The registry has no MASA entry yet, so the checkpoint is written here in
:func:`refsr.models.checkpoint.save_checkpoint`'s format (same keys, digest, atomic write;
``arch_cfg`` empty: the released sizes are fixed) when :func:`save_checkpoint` cannot resolve the
model, and :func:`load` rebuilds it without the registry.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from refsr.core.atomic import atomic_path
from refsr.core.errors import RefsrError
from refsr.models import registry
from refsr.models.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    DIGEST_KEY,
    content_digest,
    load_weights,
    nonfinite_weights,
    read_checkpoint,
    save_checkpoint,
)
from refsr.models.importers import RELEASED_FILES_KEY, file_record, released
from refsr.models.masa import MASA

RECIPE = "official"
SOURCE = "masa-official"
#: The released file stems (lower case) and the model each holds.
RELEASED_NAMES = {"masa": "masa", "masa_rec": "masa_rec"}
MODELS = ("masa", "masa_rec")
#: The architecture keys stored in the checkpoint (none: the released sizes are fixed).
ARCH: dict = {}


def model_of(path: Path, model: str | None = None) -> str:
    """``model`` if given, else the model the released file name says; a one-line error otherwise."""
    return released.model_of(path, model, RELEASED_NAMES, "MASA", "masa.pth or masa_rec.pth")


def read_released(path: Path) -> dict[str, torch.Tensor]:
    """The state dict at ``path`` as the released ``load_networks`` reads it (``module.`` stripped),
    checked strictly against the released network: every key, no other, every shape."""
    state = released.read_state(path, "MASA")
    mine = MASA().state_dict()
    for key, value in state.items():
        if key not in mine:
            raise RefsrError(path, f"key {key}: not a parameter of the released MASA network")
        if tuple(value.shape) != tuple(mine[key].shape):
            raise RefsrError(path, f"key {key}: shape {tuple(value.shape)}, expected {tuple(mine[key].shape)}")
        if not value.is_floating_point():
            raise RefsrError(path, f"key {key}: dtype {value.dtype}, expected a floating-point tensor")
    missing = [k for k in mine if k not in state]
    if missing:
        raise RefsrError(path, f"key {missing[0]}: missing ({len(missing)} keys missing; not the released "
                               "MASA network)")
    return {k: state[k].float() for k in mine}


def load_released(path: Path) -> MASA:
    """The released file at ``path`` as a :class:`MASA` in eval mode."""
    net = MASA()
    net.load_state_dict(read_released(Path(path)), strict=True)
    return net.eval()


def _registered(name: str) -> bool:
    return name in registry.RECIPES and RECIPE in registry.RECIPES[name]


def write_checkpoint(path: str | os.PathLike, net: nn.Module, name: str, extra: dict) -> None:
    """``save_checkpoint`` once the registry knows ``name`` (recipe official); until then the
    same file written here."""
    if _registered(name):
        save_checkpoint(path, net, name, ARCH, extra=extra, recipe=RECIPE)
        return
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    bad = nonfinite_weights(state)
    if bad is not None:
        raise RefsrError(path, f"not saved: weight {bad[0]} has {bad[1]} non-finite value(s) of {bad[2]}")
    ckpt = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": name, "recipe": RECIPE,
            "arch_cfg": dict(ARCH), "state_dict": state, **extra}
    ckpt[DIGEST_KEY] = content_digest(ckpt)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[MASA, dict]:
    """A MASA checkpoint written by :func:`import_released`, checked as
    :func:`refsr.models.checkpoint.read_checkpoint` checks any (format, digest, finite weights);
    ``(model in eval mode, checkpoint dict)``. Needs no registry entry."""
    ckpt = read_checkpoint(path, map_location)
    if ckpt["model"] not in MODELS:
        raise RefsrError(path, f"checkpoint of model {ckpt['model']!r}, expected {' or '.join(MODELS)}")
    try:
        net = MASA(**ckpt["arch_cfg"])
    except TypeError as err:
        raise RefsrError(f"{path} arch_cfg", f"cannot build {ckpt['model']}: {err}") from None
    load_weights(net, ckpt["state_dict"], where=path)
    return net.to(map_location).eval(), ckpt


def import_released(src: Path, out_dir: Path, model: str | None = None) -> dict[str, Path]:
    """``masa.pth`` / ``masa_rec.pth`` (a file, or a folder holding them) → ``out_dir/{model}.pt``;
    ``model`` names the model of a file of any other name."""
    src = Path(src)
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in (".pth", ".pt")) if src.is_dir() else [src]
    if src.is_dir() and model is None:
        files = [p for p in files if p.stem.lower() in RELEASED_NAMES]
    if not files:
        raise RefsrError(src, "no released MASA state dict (masa.pth, masa_rec.pth) in this folder")
    names = [model_of(path, model) for path in files]  # every name checked before anything is written
    nets = {}
    for path, name in zip(files, names, strict=True):
        if name in nets:
            raise RefsrError(path, f"a second {name} state dict; keep one per model")
        nets[name] = (path, load_released(path))  # every file checked before anything is written
    written: dict[str, Path] = {}
    for name, (path, net) in nets.items():
        out = Path(out_dir) / f"{name}.pt"
        write_checkpoint(out, net, name, {"imported_from": str(path), "source": SOURCE,
                                          RELEASED_FILES_KEY: [file_record(path)]})
        written[name] = out
    return written

"""What the importers of released weights share: which model a released file holds (by its
exact released name, or ``--model``), and the strict check of a released state dict against the
network (every key, every shape; one line naming the file and the first offending key)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from refsr.core.errors import RefsrError


def model_of(path: Path, model: str | None, names: Mapping[str, str], method: str, files: str) -> str:
    """``model`` if given (one of ``names``' models), else the model the released file name says
    (``names``: lower-case stem -> model); a one-line error otherwise. ``method`` and ``files``
    word the error (e.g. ``"TTSR"``, ``"TTSR.pt or TTSR-rec.pt"``)."""
    models = tuple(dict.fromkeys(names.values()))
    if model is not None:
        if model not in models:
            raise RefsrError("--model", f"unknown {method} model {model!r}; choose {'|'.join(models)}")
        return model
    name = names.get(Path(path).stem.lower())
    if name is None:
        raise RefsrError(path, f"not a released {method} file name ({files}), so which model it holds is "
                               f"unknown; name it with --model {'|'.join(models)}")
    return name


def check_strict(mine: Mapping, state: Mapping, path: Path, what: str) -> None:
    """``state`` has exactly the keys and shapes of ``mine`` (a network's state dict), as the
    released loaders' ``strict=True``; ``what`` names the network in the error."""
    for key, value in state.items():
        if key not in mine:
            raise RefsrError(path, f"key {key}: unexpected, not a parameter of the released {what}")
        if tuple(value.shape) != tuple(mine[key].shape):
            raise RefsrError(path, f"key {key}: shape {tuple(value.shape)}, expected {tuple(mine[key].shape)}")
    missing = [k for k in mine if k not in state]
    if missing:
        raise RefsrError(path, f"key {missing[0]}: missing ({len(missing)} keys missing; not the released {what})")


def read_state(path: Path, method: str) -> dict:
    """A released state dict as the released loaders read it (zip or legacy container,
    ``module.`` stripped); one line naming the file when it is unreadable or not a dict of tensors."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's one-line error
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
        raise RefsrError(path, f"not a readable PyTorch state dict ({type(err).__name__}: {first})") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RefsrError(path, f"expected a released {method} state dict (a dict of tensors)")
    return {str(k).removeprefix("module."): v for k, v in state.items()}

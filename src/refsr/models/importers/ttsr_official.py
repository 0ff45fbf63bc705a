"""Source ``ttsr-official``: the released TTSR state dicts (researchmm/TTSR: ``TTSR.pt``,
``TTSR-rec.pt``, as the released trainer saves them: a plain dict of ``MainNet.*`` and ``LTE.*``
tensors, ``module.`` stripped, ``LTE_copy.*`` dropped) → refsr checkpoints of
:class:`refsr.models.ttsr.TTSR`, whose parameter names are the released ones.

The two released files have the same layout, so the file name says which model it is, matched
exactly (case-insensitively, on the whole stem, :data:`RELEASED_NAMES`): ``TTSR.pt`` gives
``ttsr``, ``TTSR-rec.pt`` gives ``ttsr_rec``; a folder gives one checkpoint per such file in it.
Any other name is refused in one line asking for ``--model ttsr|ttsr_rec`` (``model=`` of
:func:`import_released`), which names the model of every file imported. (Issue 28, case 4: the
name was matched on the substring ``rec``, so ``TTSR_direct.pt``, full TTSR weights, became
``ttsr_rec``, as would "correct" or "record".) The sizes (residual blocks per stage, features) are read from
the tensors; ``res_scale`` is not stored and is the released default, 1. A state dict that does
not fit is refused naming the file and the first offending key.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from refsr.core.errors import RefsrError
from refsr.models.checkpoint import save_checkpoint
from refsr.models.importers import RELEASED_FILES_KEY, file_record, released
from refsr.models.ttsr import TTSR

RECIPE = "official"
#: Keys the released trainer or DataParallel may leave that carry no weights of the model.
_IGNORED = ("LTE_copy.", "SearchNet.")
_BLOCK_LISTS = ("MainNet.SFE.RBs", "MainNet.RB11", "MainNet.RB21", "MainNet.RB31")


#: The released file stems (lower case) and the model each holds.
RELEASED_NAMES = {"ttsr": "ttsr", "ttsr-rec": "ttsr_rec"}
MODELS = tuple(RELEASED_NAMES.values())


def model_of(path: Path, model: str | None = None) -> str:
    """``model`` if given (one of :data:`MODELS`), else the model of a released file name
    (``TTSR.pt`` → ``ttsr``, ``TTSR-rec.pt`` → ``ttsr_rec``, any case); a one-line error otherwise."""
    return released.model_of(path, model, RELEASED_NAMES, "TTSR", "TTSR.pt or TTSR-rec.pt")


def _read(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's one-line error
        raise RefsrError(path, f"not a readable PyTorch state dict ({type(err).__name__}: "
                               f"{str(err).splitlines()[0][:160] if str(err) else ''})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RefsrError(path, "expected the released TTSR state dict (a dict of tensors)")
    return {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith(_IGNORED)}


def arch_from_state(state: dict, path: Path) -> dict:
    """``n_blocks`` and ``n_feats`` of the network the state dict was saved from."""
    head = state.get("MainNet.SFE.conv_head.weight")
    if head is None:
        raise RefsrError(path, "key MainNet.SFE.conv_head.weight: missing (not a TTSR state dict)")
    blocks = []
    for prefix in _BLOCK_LISTS:
        found = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"\.(\d+)\.", k))}
        blocks.append(len(found))
    if min(blocks) < 1:
        raise RefsrError(path, f"key {_BLOCK_LISTS[blocks.index(min(blocks))]}.0.conv1.weight: missing")
    return {"n_blocks": blocks, "n_feats": int(head.shape[0]), "res_scale": 1.0}


def load_released(path: Path) -> tuple[TTSR, dict]:
    """The released state dict at ``path`` as a :class:`TTSR` (strict: every key, every shape)."""
    state = _read(path)
    arch = arch_from_state(state, path)
    model = TTSR(**arch)
    released.check_strict(model.state_dict(), state, path, "TTSR network")
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval(), arch


def import_released(src: Path, out_dir: Path, model: str | None = None) -> dict[str, Path]:
    """``TTSR.pt`` / ``TTSR-rec.pt`` (a file, or a folder holding them) → ``out_dir/{model}.pt``;
    ``model`` (``ttsr`` or ``ttsr_rec``) names the model of a file of any other name."""
    src = Path(src)
    files = (sorted(src.glob("*.pt")) + sorted(src.glob("*.pth"))) if src.is_dir() else [src]
    if not files:
        raise RefsrError(src, "no released TTSR state dict (*.pt) in this folder")
    names = [model_of(path, model) for path in files]  # every name checked before anything is written
    written: dict[str, Path] = {}
    for path, name in zip(files, names, strict=True):
        if name in written:
            raise RefsrError(path, f"a second {name} state dict (already {written[name]}); keep one per model")
        model, arch = load_released(path)
        out = Path(out_dir) / f"{name}.pt"
        save_checkpoint(out, model, name, arch, extra={"imported_from": str(path), "source": "ttsr-official",
                                                       RELEASED_FILES_KEY: [file_record(path)]},
                        recipe=RECIPE)
        written[name] = out
    return written

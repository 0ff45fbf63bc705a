"""Source ``c2matching-official``: the released C2-Matching weights (yumingj/C2-Matching) →
refsr checkpoints of :class:`refsr.models.c2matching.C2Matching`.

A folder holds ``feature_extraction.pth`` (the contrastive extractor, ``ContrasExtractorSep``)
and one or both restoration files: ``c2_matching_restoration.pth`` (the GAN-trained network →
model ``c2matching``) and ``c2_matching_restoration_mse.pth`` (the reconstruction-only one →
``c2matching_rec``); both have the same layout, so the file name says which model it is (a file
of another name needs ``model=``, ``--model c2matching|c2matching_rec``). A single restoration
file may be given instead of the folder; its ``feature_extraction.pth`` is read beside it.

Loading is the released ``load_network``: ``torch.load`` (the zip container or the legacy one
that PyTorch 1.4 wrote; ``weights_only=True``), ``module.`` stripped, strict. A file that is
not the released network is refused in one line naming the file and the first offending
parameter (unexpected, then wrong shape, then missing). The reference VGG19 (relu1_1 ..
relu3_1) is torchvision's ImageNet VGG19 as refsr loads it (:func:`refsr.features.vgg.load_vgg19`:
``REFSR_VGG19_WEIGHTS``, ``vgg_weights``, or torchvision's cache), as the released code takes it.

Checkpoints are refsr's (:mod:`refsr.models.checkpoint`: format, version, model, recipe
``official``, ``arch_cfg`` = ``ngf``, ``n_blocks``, ``groups`` read from the tensors, state dict,
digest). Until the registry has ``c2matching`` entries, :func:`load` rebuilds the network from
such a checkpoint (``load_checkpoint`` needs the registry entry).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from refsr.core.atomic import atomic_path
from refsr.core.errors import RefsrError
from refsr.models import registry
from refsr.models.c2matching import REF_LAYERS, C2Matching
from refsr.models.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    DIGEST_KEY,
    RESERVED_KEYS,
    content_digest,
    load_weights,
    nonfinite_weights,
    read_checkpoint,
    save_checkpoint,
)
from refsr.models.importers import RELEASED_FILES_KEY, file_record, find_released, released

SOURCE = "c2matching-official"
RECIPE = "official"
EXTRACTOR_FILE = "feature_extraction.pth"
#: The released restoration file stems (lower case) and the model each holds.
RELEASED_NAMES = {"c2_matching_restoration": "c2matching", "c2_matching_restoration_mse": "c2matching_rec"}
MODELS = tuple(RELEASED_NAMES.values())
ARCH_KEYS = ("ngf", "n_blocks", "groups")


def model_of(path: Path, model: str | None = None) -> str:
    """``model`` if given, else the model of a released restoration file name; a one-line error otherwise."""
    return released.model_of(path, model, RELEASED_NAMES, "C2-Matching restoration",
                             "c2_matching_restoration.pth or c2_matching_restoration_mse.pth")


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """A released state dict (zip or legacy container), ``module.`` stripped, as the released loader."""
    if not Path(path).is_file():
        raise RefsrError(path, "released C2-Matching weights not found")
    return released.read_state(path, "C2-Matching")


def check_state(net: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Strict: every key of ``net`` with its shape, nothing else; one line naming the first offence."""
    released.check_strict(net.state_dict(), state, path, type(net).__name__)


def arch_from_state(state: Mapping[str, torch.Tensor]) -> dict:
    """``ngf``, ``n_blocks``, ``groups`` of the RestorationNet the state dict was saved from, read
    from the tensors; the released sizes (64, 16, 8) where the tensors do not say (then
    :func:`check_state` names what does not fit)."""
    first = state.get("content_extractor.conv_first.weight")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"content_extractor\.body\.(\d+)\.", k))}
    offset_mask = state.get("dyn_agg_restore.small_dyn_agg.conv_offset_mask.weight")
    groups = 8
    if offset_mask is not None and offset_mask.dim() == 4 and offset_mask.shape[0] % 27 == 0 and offset_mask.shape[0]:
        groups = offset_mask.shape[0] // 27
    ngf = int(first.shape[0]) if first is not None and first.dim() == 4 and first.shape[0] % 2 == 0 else 64
    return {"ngf": ngf, "n_blocks": len(blocks) or 16, "groups": int(groups)}


def load_released(restoration: Path, extractor: Path, vgg_weights: str | os.PathLike | None = None
                  ) -> tuple[C2Matching, dict, str]:
    """The released files as one :class:`C2Matching` (strict), its ``arch_cfg`` and the VGG19 source."""
    from refsr.features.vgg import load_vgg19

    g_state = read_state(restoration)
    arch = arch_from_state(g_state)
    net = C2Matching(**arch)
    check_state(net.net_g, g_state, restoration)
    e_state = read_state(extractor)
    check_state(net.net_extractor, e_state, extractor)
    net.net_g.load_state_dict({k: v.float() for k, v in g_state.items()}, strict=True)
    net.net_extractor.load_state_dict({k: v.float() for k, v in e_state.items()}, strict=True)
    vgg = load_vgg19(REF_LAYERS, weights=vgg_weights)
    net.vgg.load_state_dict(vgg.state_dict(), strict=True)
    return net.eval(), arch, vgg.weights_source


def write_checkpoint(path: Path, net: nn.Module, name: str, arch: Mapping, extra: Mapping) -> None:
    """:func:`refsr.models.checkpoint.save_checkpoint` once the registry knows ``name``; until then
    the same file written here (same keys, same digest rule, recipe ``official``)."""
    try:
        registry.get(name, recipe=RECIPE)
    except RefsrError:
        pass
    else:
        save_checkpoint(path, net, name, dict(arch), extra=dict(extra), recipe=RECIPE)
        return
    assert not set(extra) & set(RESERVED_KEYS)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    bad = nonfinite_weights(state)
    if bad is not None:
        raise RefsrError(path, f"not saved: weight {bad[0]} has {bad[1]} non-finite value(s) of {bad[2]}")
    ckpt = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": name, "recipe": RECIPE,
            "arch_cfg": {k: arch[k] for k in ARCH_KEYS}, "state_dict": state, **extra}
    ckpt[DIGEST_KEY] = content_digest(ckpt)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[C2Matching, dict]:
    """A C2-Matching checkpoint (from :func:`import_released`) as ``(network in eval mode, checkpoint)``,
    without the registry; the same checks as :func:`refsr.models.checkpoint.load_checkpoint`."""
    ckpt = read_checkpoint(path)
    if ckpt["model"] not in MODELS:
        raise RefsrError(path, f"checkpoint of model {ckpt['model']!r}, expected {' or '.join(MODELS)}")
    cfg = ckpt["arch_cfg"]
    if not isinstance(cfg, Mapping) or sorted(cfg) != sorted(ARCH_KEYS):
        raise RefsrError(f"{path} arch_cfg", f"expected keys {list(ARCH_KEYS)}, got {cfg!r}")
    try:
        net = C2Matching(**cfg)
    except (TypeError, ValueError) as err:
        raise RefsrError(f"{path} arch_cfg", f"cannot build {ckpt['model']}: {err}") from None
    load_weights(net, ckpt["state_dict"], where=path)
    return net.to(map_location).eval(), ckpt


def _files(src: Path, model: str | None) -> tuple[list[tuple[Path, str]], Path]:
    """``[(restoration file, model)]`` and the extractor file of ``src`` (a folder or one file)."""
    if src.is_dir():
        if model is not None:
            raise RefsrError("--model", "applies to a single restoration file, not a folder")
        found = {p.stem.lower(): p for p in sorted(src.iterdir()) if p.suffix.lower() in (".pth", ".pt")}
        pairs = [(found[stem], name) for stem, name in RELEASED_NAMES.items() if stem in found]
        if not pairs:
            raise RefsrError(src, "no released C2-Matching restoration file in this folder "
                                  f"({' or '.join(s + '.pth' for s in RELEASED_NAMES)})")
        return pairs, find_released(src, EXTRACTOR_FILE) or src / EXTRACTOR_FILE
    if src.name.lower() == EXTRACTOR_FILE:
        raise RefsrError(src, "this is the contrastive extractor only; give the folder holding it and a "
                              "c2_matching_restoration*.pth, or a restoration file beside it")
    return [(src, model_of(src, model))], find_released(src.parent, EXTRACTOR_FILE) or src.parent / EXTRACTOR_FILE


def import_released(src: Path, out_dir: Path, model: str | None = None,
                    vgg_weights: str | os.PathLike | None = None) -> dict[str, Path]:
    """The released folder (or one restoration file) → ``out_dir/{model}.pt`` per restoration file."""
    src = Path(src)
    pairs, extractor = _files(src, model)
    if not extractor.is_file():
        raise RefsrError(extractor, "the released contrastive extractor (feature_extraction.pth) is missing; "
                                    "C2-Matching needs it beside the restoration weights")
    written: dict[str, Path] = {}
    for path, name in pairs:
        net, arch, vgg_source = load_released(path, extractor, vgg_weights)
        out = Path(out_dir) / f"{name}.pt"
        out.parent.mkdir(parents=True, exist_ok=True)
        write_checkpoint(out, net, name, arch, {"imported_from": str(path), "extractor_from": str(extractor),
                                                "vgg19_weights": str(vgg_source), "source": SOURCE,
                                                RELEASED_FILES_KEY: [file_record(path), file_record(extractor)]})
        written[name] = out
    return written

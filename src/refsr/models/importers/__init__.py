"""Released weights of published methods, converted into refsr checkpoints.

An importer reads the files a method's authors released (in their framework's layout) and
writes one refsr checkpoint per model it can build from them, ``{out_dir}/{model}.pt``; it
refuses a file that does not fit, naming the file and the first offending parameter. The
table below maps a source name (``refsr import-weights SOURCE``, the config's
``pretrained.<model>.source``) to its function; importing this module needs no torch.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from refsr.core.errors import RefsrError, os_reason

#: source name -> ``"module:function(src, out_dir) -> {model: path}"``.
IMPORTERS: dict[str, str] = {
    "refsr": "refsr.models.importers.refsr:import_checkpoint",
    "srntt-official": "refsr.models.importers.srntt_official:import_released",
    "ttsr-official": "refsr.models.importers.ttsr_official:import_released",
    "c2matching-official": "refsr.models.importers.c2matching_official:import_released",
    "masa-official": "refsr.models.importers.masa_official:import_released",
}


#: Sources whose weights are of one recipe (``refsr`` keeps the checkpoint's own).
SOURCE_RECIPE: dict[str, str] = {"srntt-official": "official", "ttsr-official": "official",
                                 "c2matching-official": "official", "masa-official": "official"}


#: The models a source's weights can hold (a source not listed, such as ``refsr``: any model).
SOURCE_MODELS: dict[str, tuple[str, ...]] = {"srntt-official": ("srresnet", "srntt_l2", "srntt"),
                                             "ttsr-official": ("ttsr", "ttsr_rec"),
                                             "c2matching-official": ("c2matching", "c2matching_rec"),
                                             "masa-official": ("masa", "masa_rec")}


def check_source(source: str, where: str = "source") -> None:
    """A one-line error naming ``where`` unless ``source`` is a known importer (no import)."""
    if source not in IMPORTERS:
        raise RefsrError(where, f"unknown weights source {source!r}; choose one of {', '.join(IMPORTERS)}")


def check_config(config) -> None:
    """Every ``pretrained.<model>.source`` of a validated config names a known importer whose
    weights can hold that model (:data:`SOURCE_MODELS`) and are of the recipe the config runs
    that model in."""
    from refsr.models import registry

    for name, spec in config.get("pretrained", {}).items():
        where = f"config key pretrained.{name}.source"
        check_source(spec["source"], where=where)
        holds = SOURCE_MODELS.get(spec["source"])
        if holds is not None and name not in holds:
            raise RefsrError(where, f"{spec['source']} weights hold {', '.join(holds)}, not {name}; "
                                    f"give {name} weights of its own (source refsr, or train it here)")
        wanted = SOURCE_RECIPE.get(spec["source"])
        if wanted is not None and registry.recipe_of(name, config) != wanted:
            raise RefsrError(where, f"{spec['source']} gives {name} weights of recipe {wanted}, but the config "
                                    f"runs {name} in recipe {registry.recipe_of(name, config)} (set recipe: {wanted})")


def importer(source: str, where: str = "source") -> Callable[[Path, Path], dict[str, Path]]:
    """The import function of ``source``."""
    check_source(source, where)
    module, _, fn = IMPORTERS[source].partition(":")
    return getattr(importlib.import_module(module), fn)


#: Sources whose files do not say which model they hold by themselves: ``model=`` of
#: :func:`import_weights` (``refsr import-weights --model``) may name it, one of these.
MODEL_CHOICES: dict[str, tuple[str, ...]] = {"ttsr-official": ("ttsr", "ttsr_rec"),
                                             "c2matching-official": ("c2matching", "c2matching_rec"),
                                             "masa-official": ("masa", "masa_rec")}


def import_weights(source: str, src: str | os.PathLike, out_dir: str | os.PathLike,
                   model: str | None = None) -> dict[str, Path]:
    """Convert the released weights at ``src`` into refsr checkpoints in ``out_dir``; ``model``
    names the model the file holds, for a source of :data:`MODEL_CHOICES` only.

    All or nothing: the checkpoints are written into a temporary folder beside ``out_dir`` and
    moved in only once every conversion succeeded (a damaged file or a full disk leaves
    ``out_dir`` as it was)."""
    src = Path(src)
    if not src.exists():
        raise RefsrError(src, "released weights not found")
    convert = importer(source)
    kwargs = {}
    if model is not None:
        choices = MODEL_CHOICES.get(source)
        if choices is None:
            raise RefsrError("--model", f"{source} weights say which model they hold; --model applies only to "
                                        f"{', '.join(MODEL_CHOICES)}")
        if model not in choices:
            raise RefsrError("--model", f"{source} weights hold {' or '.join(choices)}, not {model!r}")
        kwargs["model"] = model
    out_dir = Path(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.import-", dir=out_dir.parent))
    except OSError as err:
        raise RefsrError(out_dir, f"cannot write ({os_reason(err)})") from None
    try:
        written = convert(src, staging, **kwargs)
        out_dir.mkdir(parents=True, exist_ok=True)
        moved = {}
        for name, path in written.items():
            moved[name] = out_dir / Path(path).name
            os.replace(path, moved[name])
        return moved
    finally:
        shutil.rmtree(staging, ignore_errors=True)

"""Rule import_weights: ``results/imported/{model}/checkpoint.pt`` from the config's
``pretrained.<model>`` (a released file or folder and its importer)."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from refsr.core.errors import RefsrError
from refsr.models.checkpoint import read_checkpoint
from refsr.models.importers import MODEL_CHOICES, import_weights

log = logging.getLogger(__name__)


def import_one(model: str, source: str, src: str | os.PathLike, out: str | os.PathLike,
               recipe: str | None = None) -> Path:
    """Convert ``src`` with importer ``source`` and move ``model``'s checkpoint to ``out``; with
    ``recipe`` (the one the config gives ``model``), a checkpoint of another recipe is a one-line
    error (the tables would name the wrong recipe)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".import-", dir=out.parent) as tmp:
        # a released file whose name does not say which model it holds (TTSR's): the config does
        named = model if source in MODEL_CHOICES and Path(src).is_file() else None
        written = import_weights(source, src, tmp, model=named)
        if model not in written:
            raise RefsrError(src, f"{source} weights hold no {model} (they give {', '.join(written) or 'nothing'})")
        if recipe is not None:
            got = str(read_checkpoint(written[model])["recipe"])
            if got != recipe:
                raise RefsrError(src, f"{model} weights of recipe {got}, but the config runs {model} in recipe "
                                      f"{recipe} (set config key recipe: {got})")
        os.replace(written[model], out)
    log.info("imported %s from %s (%s)", model, src, source)
    return out


def main(smk) -> None:
    job = smk.params.job
    import_one(smk.wildcards.model, job["source"], smk.input[0], smk.output[0], recipe=job["recipe"])

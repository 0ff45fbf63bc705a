"""Rule import_weights: ``results/imported/{model}/checkpoint.pt`` from the config's
``pretrained.<model>`` (a released file or folder and its importer), and beside it
``released.json``: the name, size and sha256 of every file the importer read for that model
(:func:`refsr.models.importers.released_record` reads it back)."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from refsr.core.errors import RefsrError
from refsr.models.checkpoint import read_checkpoint
from refsr.models.importers import (
    MODEL_CHOICES,
    RELEASED_FILES_KEY,
    file_record,
    import_weights,
    write_released_record,
)

log = logging.getLogger(__name__)


def import_one(model: str, source: str, src: str | os.PathLike, out: str | os.PathLike,
               recipe: str | None = None, record: str | os.PathLike | None = None) -> Path:
    """Convert ``src`` with importer ``source`` and move ``model``'s checkpoint to ``out``; with
    ``recipe`` (the one the config gives ``model``), a checkpoint of another recipe is a one-line
    error (the tables would name the wrong recipe). With ``record``, also write there the files
    read (:func:`refsr.models.importers.write_released_record`): those the importer stored in
    the checkpoint (``released_files``), or for source ``refsr`` the given checkpoint itself."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".import-", dir=out.parent) as tmp:
        # a released file whose name does not say which model it holds (TTSR's): the config does
        named = model if source in MODEL_CHOICES and Path(src).is_file() else None
        written = import_weights(source, src, tmp, model=named)
        if model not in written:
            raise RefsrError(src, f"{source} weights hold no {model} (they give {', '.join(written) or 'nothing'})")
        if recipe is not None or record is not None:
            ckpt = read_checkpoint(written[model])
            got = str(ckpt["recipe"])
            if recipe is not None and got != recipe:
                raise RefsrError(src, f"{model} weights of recipe {got}, but the config runs {model} in recipe "
                                      f"{recipe} (set config key recipe: {got})")
            if record is not None:
                files = [file_record(src)] if source == "refsr" else ckpt.get(RELEASED_FILES_KEY)
                if not files:
                    raise RefsrError(src, f"the {source} importer recorded no released files for {model}")
                write_released_record(record, model, source, files)
                for f in files:
                    log.info("read %s: %d bytes, sha256 %s", f["name"], f["bytes"], f["sha256"])
        os.replace(written[model], out)
    log.info("imported %s from %s (%s)", model, src, source)
    return out


def main(smk) -> None:
    job = smk.params.job
    import_one(smk.wildcards.model, job["source"], smk.input[0], smk.output.checkpoint, recipe=job["recipe"],
               record=smk.output.released)

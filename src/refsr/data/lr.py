"""The degradation stage: LR versions of a built dataset's test HR images and training inputs.

Layout: ``lr/test/{group}.png`` and ``lr/train/{pair}.png`` beside the manifest.
"""

from __future__ import annotations

import logging
from pathlib import Path

from refsr.core.atomic import atomic_dir
from refsr.core.imageio import read_image, write_image
from refsr.core.progress import progress
from refsr.data.layout import Dataset
from refsr.data.resize import degrade

log = logging.getLogger(__name__)


def lr_path(lr_dir: Path, split: str, name: str) -> Path:
    return Path(lr_dir) / split / f"{name}.png"


def write_lr(ds: Dataset, lr_dir: Path, scale: int = 4, method: str = "matlab") -> int:
    """Degrade every test HR and training input of ``ds`` into ``lr_dir`` (atomically, as a whole)."""
    jobs = [("test", g.name, g.hr) for g in ds.groups] + [("train", t.name, t.input) for t in ds.train]
    with atomic_dir(lr_dir) as tmp:
        for split, name, src in progress(jobs, f"degrade {ds.name}", logger=log):
            _, lr = degrade(read_image(src), scale, method, where=src)
            write_image(lr_path(tmp, split, name), lr)
    log.info("wrote %d LR images (x1/%d, %s bicubic) to %s", len(jobs), scale, method, lr_dir)
    return len(jobs)


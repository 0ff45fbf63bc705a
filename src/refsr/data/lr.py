"""The degradation stage: LR versions of a built dataset's test HR images and training inputs.

Layout: ``lr/test/{group}.png`` and ``lr/train/{pair}.png`` beside the manifest.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from refsr.core.atomic import atomic_dir
from refsr.core.imageio import read_image, write_image
from refsr.core.progress import progress
from refsr.data.degradation import realistic
from refsr.data.layout import Dataset
from refsr.data.resize import degrade, modcrop

log = logging.getLogger(__name__)


def lr_path(lr_dir: Path, split: str, name: str) -> Path:
    return Path(lr_dir) / split / f"{name}.png"


def write_lr(ds: Dataset, lr_dir: Path, scale: int = 4, method: str = "matlab",
             degradation: Mapping[str, Any] | None = None) -> int:
    """Degrade every test HR and training input of ``ds`` into ``lr_dir`` (atomically, as a whole).

    ``degradation``: the validated config section (``test`` / ``train``: bicubic | realistic,
    ``seed``, ``realistic``); None = bicubic for both. With a realistic split, the parameters
    and each image's draws go to ``lr_dir/degradation.json``.
    """
    deg = degradation or {"test": "bicubic", "train": "bicubic"}
    jobs = [("test", g.name, g.hr) for g in ds.groups] + [("train", t.name, t.input) for t in ds.train]
    record: dict[str, Any] = {"test": deg["test"], "train": deg["train"], "scale": scale, "resize": method}
    if "realistic" in (deg["test"], deg["train"]):
        record.update(seed=deg["seed"], realistic=dict(deg["realistic"]), draws={})
    with atomic_dir(lr_dir) as tmp:
        for split, name, src in progress(jobs, f"degrade {ds.name}", logger=log):
            if deg[split] == "realistic":
                key = f"{split}/{name}"
                lr, record["draws"][key] = realistic(modcrop(read_image(src), scale), scale, deg["realistic"],
                                                      deg["seed"], key)
            else:
                _, lr = degrade(read_image(src), scale, method, where=src)
            write_image(lr_path(tmp, split, name), lr)
        (tmp / "degradation.json").write_text(json.dumps(record, indent=1) + "\n")
    log.info("wrote %d LR images (x1/%d; test %s, train %s; %s bicubic) to %s", len(jobs), scale,
             deg["test"], deg["train"], method, lr_dir)
    return len(jobs)

"""WR-SR (C2-Matching, CVPR 2021): 80 test images, each with one reference found on the web.

The published layout (C2-Matching ``datasets/DATASETS.md`` and ``WR-SR_pairs.txt``, which pairs
``NNN.png`` with ``NNN_ref.png``)::

    input/001.png .. input/080.png          the HR images
    ref/001_ref.png .. ref/080_ref.png      each one's reference

``cfg`` keys (defaults in the schema): ``groups`` (use the pairs 001..N, default all 80).
Every expected file is decoded before anything is written; all problems (missing, empty,
unreadable, smaller than ``MIN_SIDE``) are reported together. Extra files are ignored.
Written: ``images/test/{NNN}/HR.png`` (mod-cropped to ``scale``) and
``images/test/{NNN}/refs/{NNN}_ref.png`` (size unchanged) at level ``L1``, RGB uint8.
"""

from __future__ import annotations

import logging
from pathlib import Path

from refsr.core.errors import RefsrError
from refsr.core.progress import progress
from refsr.data.checks import WRSR_INPUT, WRSR_REF, check_wrsr
from refsr.data.common import Problems, inspect_images, write_test_group
from refsr.data.layout import LEVELS, Dataset

log = logging.getLogger(__name__)


def expected_pairs(input_dir: Path, ref_dir: Path, n: int) -> dict[str, tuple[Path, Path]]:
    """Group name ``NNN`` -> ``(input/NNN.png, ref/NNN_ref.png)`` for the first ``n`` pairs."""
    return {f"{i:03d}": (input_dir / f"{i:03d}.png", ref_dir / f"{i:03d}_ref.png") for i in range(1, n + 1)}


def build_wrsr(name: str, cfg: dict, out_dir: Path, scale: int = 4) -> Dataset:
    """Validate a WR-SR folder, then write its pairs under ``out_dir``."""
    cfg, input_dir, ref_dir = check_wrsr(name, cfg)
    pairs = expected_pairs(input_dir, ref_dir, cfg["groups"])
    flat = [p for pair in pairs.values() for p in pair]
    if not any(p.exists() for p in flat):
        last = f"{cfg['groups']:03d}"
        raise RefsrError(input_dir.parent, f"no WR-SR files found: expected {WRSR_INPUT}/001.png .. "
                                           f"{WRSR_INPUT}/{last}.png and {WRSR_REF}/001_ref.png .. "
                                           f"{WRSR_REF}/{last}_ref.png")
    problems = Problems()
    infos = inspect_images(progress(flat, f"check {name}", logger=log), problems)
    problems.raise_if_any()

    ds = Dataset(name=name, root=Path(out_dir))
    cropped = 0
    for group, (hr, ref) in progress(list(pairs.items()), f"write {name}", logger=log):
        g, was_cropped = write_test_group(out_dir, group, hr, {ref.stem: (ref, LEVELS[0])}, infos, scale)
        ds.groups.append(g)
        cropped += was_cropped
    log.info("%s: %d WR-SR pairs from %s (%d HR mod-cropped to a multiple of %d), one reference each "
             "at level L1", name, len(ds.groups), input_dir.parent, cropped, scale)
    return ds

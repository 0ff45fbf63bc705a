"""Urban100 and Manga109: test sets of HR images only, with no reference.

RefSR papers report them with the LR input as its own reference (TTSR issue #18: "ref is
just the lr itself"; MASA-SR's test code does the same): that is the evaluation level ``LR``. The level
``HR`` (the ground truth as its reference) is the self-HR oracle, an upper bound. Levels
``L1``..``L5`` have no reference on these sets.

``test_dir`` holds the HR images directly (any accepted image type; the published sets are
PNG: Urban100 ``img_001.png`` .. ``img_100.png``, Manga109 one page per book named by its title,
e.g. ``AisazuNihaIrarenai.png``). ``cfg`` keys (defaults in the schema): ``images`` (how many the
folder must hold: 100 / 109), ``groups`` (use the first N by file name).

Every used image is decoded before anything is written and all problems are reported together.
Written: ``images/test/{stem}/HR.png`` (RGB uint8, mod-cropped to ``scale``); the manifest has
no reference rows.
"""

from __future__ import annotations

import logging
from pathlib import Path

from refsr.core.errors import RefsrError
from refsr.core.progress import progress
from refsr.data.checks import cfg_key, check_hr_only
from refsr.data.common import Problems, inspect_images, list_images, unique_stems, write_test_group
from refsr.data.layout import Dataset

log = logging.getLogger(__name__)


def _count_problem(test_dir: Path, images: list[Path], expected: int, name: str) -> str:
    """The wrong-count message, with a hint for SelfExSR's layout (``image_SRF_4/`` sub-folders
    holding ``img_001_SRF_4_HR.png`` beside ``img_001_SRF_4_LR.png``)."""
    subs = sorted(p.name for p in test_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    low = [p.name for p in images if p.stem.endswith("_LR")]
    hint = ""
    if low:
        hint = (f"; it also holds {len(low)} LR image{'s' if len(low) != 1 else ''} "
                f"({low[0]}{', ...' if len(low) > 1 else ''}): keep only the HR images")
    elif subs:
        hint = (f"; it has sub-folders ({', '.join(subs[:4])}{', ...' if len(subs) > 4 else ''}): "
                "test_dir must be the folder holding the HR images themselves")
    return f"holds {len(images)} images, expected {expected} (from {cfg_key(name, 'images')}){hint}"


def build_hr_only(name: str, cfg: dict, out_dir: Path, scale: int = 4) -> Dataset:
    """Validate an Urban100 / Manga109 folder, then write its HR images under ``out_dir``."""
    cfg, test_dir = check_hr_only(name, cfg)
    all_hrs = list_images(test_dir)
    if len(all_hrs) != cfg["images"]:
        raise RefsrError(test_dir, _count_problem(test_dir, all_hrs, cfg["images"], name))
    problems = Problems()
    hrs = list(unique_stems(all_hrs, problems, "test groups").values())[:cfg["groups"]]
    infos = inspect_images(progress(hrs, f"check {name}", logger=log), problems)
    problems.raise_if_any()

    ds = Dataset(name=name, root=Path(out_dir))
    cropped = 0
    for hr in progress(hrs, f"write {name}", logger=log):
        group, was_cropped = write_test_group(out_dir, hr.stem, hr, {}, infos, scale)
        ds.groups.append(group)
        cropped += was_cropped
    log.info("%s (%s): %d test groups from %s (%d HR mod-cropped to a multiple of %d), no references: "
             "evaluate at level LR (LR as its own reference) or HR (oracle)", name, cfg["kind"],
             len(ds.groups), test_dir, cropped, scale)
    return ds

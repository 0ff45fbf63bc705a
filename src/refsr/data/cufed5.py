"""CUFED5 (test) and CUFED (training), the SRNTT paper's datasets, from the user's folders.

``cfg`` keys:

``test_dir`` (required)
    The CUFED5 folder: ``{000..125}_{0..5}.png``, ``_0`` the HR image and
    ``_1``..``_5`` its references at similarity levels L1 (most similar) .. L5.
``train_dir`` (optional)
    The CUFED training folder: ``input/`` and ``ref/`` holding same-named images
    (11,871 pairs of 160x160). Read in place: the manifest records absolute paths.
``groups`` (optional)
    Use only the first N groups ``000``..``N-1`` (default all 126).
``max_train_pairs`` (optional)
    Use at most this many training pairs (first by name).

Every expected test file is decoded before anything is written, and all
problems (missing, empty, truncated, smaller than ``MIN_SIDE`` = 12 pixels) are
reported together in one error. Extra files in ``test_dir`` are ignored.

Written: ``images/test/{group}/HR.png`` (RGB uint8, mod-cropped to ``scale``)
and ``images/test/{group}/L{k}.png`` (RGB uint8, size unchanged).
"""

from __future__ import annotations

import logging
from pathlib import Path

from refsr.core.errors import RefsrError
from refsr.core.progress import progress
from refsr.data.checks import cfg_count, check_cufed5
from refsr.data.common import (
    Problems,
    collect_train_pairs,
    inspect_images,
    normalise_image,
)
from refsr.data.layout import LEVELS, Dataset, TestGroup

log = logging.getLogger(__name__)

N_GROUPS = 126  # CUFED5 test groups 000..125


def expected_files(test_dir: Path, n_groups: int) -> dict[str, list[Path]]:
    """Group name -> ``[HR, L1, .., L5]`` paths that a CUFED5 folder must hold."""
    return {f"{i:03d}": [test_dir / f"{i:03d}_{k}.png" for k in range(len(LEVELS) + 1)]
            for i in range(n_groups)}


def build_cufed5(name: str, cfg: dict, out_dir: Path, scale: int = 4) -> Dataset:
    """Validate the CUFED5/CUFED folders, then write the normalised test images under ``out_dir``."""
    test_dir, train_dir = check_cufed5(name, cfg)
    n_groups = cfg_count(cfg, name, "groups", N_GROUPS)
    max_pairs = cfg_count(cfg, name, "max_train_pairs")
    out_dir = Path(out_dir)

    # 1. validate everything; nothing is written until all is well
    files = expected_files(test_dir, n_groups)
    flat = [p for paths in files.values() for p in paths]
    if not any(p.exists() for p in flat):
        last = f"{n_groups - 1:03d}"
        raise RefsrError(test_dir, f"no CUFED5 files found: expected 000_0.png .. {last}_5.png "
                                   "(_0 the HR image, _1.._5 its references L1..L5)")
    problems = Problems()
    infos = inspect_images(progress(flat, f"check {name}", logger=log), problems)
    pairs = collect_train_pairs(train_dir, problems, max_pairs) if train_dir else []
    problems.raise_if_any()

    # 2. write
    ds = Dataset(name=name, root=out_dir)
    cropped = 0
    for group, (hr_src, *ref_srcs) in progress(list(files.items()), f"write {name}", logger=log):
        gdir = out_dir / "images" / "test" / group
        hr = gdir / "HR.png"
        shape = normalise_image(hr_src, hr, crop_to=scale, info=infos[hr_src])
        cropped += shape != (infos[hr_src].height, infos[hr_src].width)
        g = TestGroup(group, hr=hr)
        for level, src in zip(LEVELS, ref_srcs, strict=True):
            dst = gdir / f"{level}.png"
            normalise_image(src, dst, info=infos[src])
            g.refs[level] = dst
            g.levels[level] = level
            g.sources[level] = src
        ds.groups.append(g)
    ds.train = pairs
    log.info("%s: %d test groups from %s (%d HR mod-cropped to a multiple of %d), %d training pairs%s",
             name, len(ds.groups), test_dir, cropped, scale, len(pairs),
             f" from {train_dir} (read in place)" if train_dir else "")
    return ds

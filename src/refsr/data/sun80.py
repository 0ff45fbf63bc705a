"""Sun80 (Sun & Hays, ICCP 2012), the RefSR test set of 80 photos with web scene matches.

The layout RefSR test code reads (MASA-SR's ``dataloader/dataset.py``; ``test_dir`` holds both)::

    Sun_Hays_SR_groundtruth/<name>.jpg           the 80 HR images
    Sun_Hays_SR_scenematches/<name>.jpg/*.jpg    each one's 20 scene matches (a folder named
                                                 by the HR image's file name, extension included)

``cfg`` keys (defaults in the schema): ``images`` (HR images the folder must hold, 80),
``references`` (fewest scene matches per image, 20), ``reference`` (``random``: one match per
image chosen from ``seed`` and the image's file name, as the published tests pick one at random;
``all``: every match), ``groups`` (use the first N images by file name).

Nothing is written until the layout is checked (the HR count, one folder per used image with
at least ``references`` matches) and every image that will be written has been decoded; all
problems are reported together. Matches named like another of the same image (same stem) are
refused. Written: ``images/test/{stem}/HR.png`` (mod-cropped to ``scale``) and
``images/test/{stem}/refs/{match stem}.png`` (size unchanged), RGB uint8. The random match gets
level ``L1`` (the one reference of the protocol); with ``all`` the matches get no level and the
tiers stage orders them by similarity score.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from refsr.core.errors import RefsrError
from refsr.core.progress import progress
from refsr.data.checks import SUN80_MATCHES, cfg_key, check_sun80
from refsr.data.common import Problems, inspect_images, list_images, unique_stems, write_test_group
from refsr.data.layout import LEVELS, Dataset

log = logging.getLogger(__name__)


def choose_match(matches: list[Path], seed: int, hr_name: str) -> Path:
    """The one scene match ``reference: random`` keeps: drawn from ``matches`` (sorted by name)
    with a generator seeded by ``seed`` and the HR file name, so the choice for an image does not
    depend on which other images are used (``groups``) or on the order they are read in."""
    return matches[random.Random(f"{seed}/{hr_name}").randrange(len(matches))]


def scene_matches(matches_dir: Path, hrs: list[Path], fewest: int,
                  problems: Problems) -> dict[Path, dict[str, Path]]:
    """HR image -> {match stem: path} from ``matches_dir/{hr file name}/``; a missing folder or
    one with fewer than ``fewest`` matches is a problem naming the folder and the count."""
    out: dict[Path, dict[str, Path]] = {}
    for hr in hrs:
        folder = matches_dir / hr.name
        if not folder.is_dir():
            problems.file(folder, f"missing folder: the scene matches of {hr.name}")
            continue
        matches = list_images(folder)
        if len(matches) < fewest:
            problems.other(folder, f"{len(matches)} scene match{'es' if len(matches) != 1 else ''}, "
                                   f"expected at least {fewest}")
            continue
        out[hr] = unique_stems(matches, problems, f"the scene matches of {hr.name}")
    return out


def build_sun80(name: str, cfg: dict, out_dir: Path, scale: int = 4) -> Dataset:
    """Validate a Sun80 folder, then write its HR images and the chosen scene matches under ``out_dir``."""
    cfg, hr_dir, matches_dir = check_sun80(name, cfg)

    # 1. the layout: counts and folders (nothing opened yet)
    all_hrs = list_images(hr_dir)
    if len(all_hrs) != cfg["images"]:
        raise RefsrError(hr_dir, f"holds {len(all_hrs)} HR images, expected {cfg['images']} "
                                 f"(from {cfg_key(name, 'images')})")
    problems = Problems()
    hrs = list(unique_stems(all_hrs, problems, "test groups").values())[:cfg["groups"]]
    matches = scene_matches(matches_dir, hrs, cfg["references"], problems)
    problems.raise_if_any()

    # 2. the references kept, then every image to be written decoded
    if cfg["reference"] == "random":
        kept = {}
        for hr, found in matches.items():
            src = choose_match(list(found.values()), cfg["seed"], hr.name)
            kept[hr] = {src.stem: (src, LEVELS[0])}
    else:
        kept = {hr: {stem: (src, "") for stem, src in found.items()} for hr, found in matches.items()}
    images = [*hrs, *(src for refs in kept.values() for src, _ in refs.values())]
    infos = inspect_images(progress(images, f"check {name}", logger=log), problems)
    problems.raise_if_any()

    # 3. write
    ds = Dataset(name=name, root=Path(out_dir))
    cropped = 0
    for hr in progress(hrs, f"write {name}", logger=log):
        group, was_cropped = write_test_group(out_dir, hr.stem, hr, kept[hr], infos, scale)
        ds.groups.append(group)
        cropped += was_cropped
    n_refs = sum(len(g.refs) for g in ds.groups)
    how = (f"one scene match per image at random (seed {cfg['seed']}), level L1"
           if cfg["reference"] == "random" else "every scene match, levels from the tiers stage")
    log.info("%s: %d test groups from %s (%d HR mod-cropped to a multiple of %d), %d references "
             "from %s/: %s", name, len(ds.groups), hr_dir, cropped, scale, n_refs, SUN80_MATCHES, how)
    return ds

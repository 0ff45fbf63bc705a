"""A user's own test images and candidate references (and optionally training pairs).

``cfg`` keys:

``hr_dir`` (required)
    Folder of HR test images (png, jpg, jpeg, bmp, tif, tiff, webp; any case).
    Each image is one test group, named by its file stem (stems must be unique).
``refs_dir`` (one of ``refs_dir`` / ``pairs_csv``)
    One sub-folder per HR image, named by the HR file's stem, holding one or
    more candidate references.
``pairs_csv`` (one of ``refs_dir`` / ``pairs_csv``)
    A CSV with columns ``hr,ref`` (more columns are ignored), one row per
    (HR, reference); several rows per HR allowed. Paths are absolute or
    relative to the CSV's folder; an ``hr`` not found there is looked up in
    ``hr_dir`` (so a bare file name works).
``train_dir`` (optional)
    Training pairs laid out like CUFED: ``input/`` and ``ref/`` with same-named
    images, read in place.
``groups`` / ``max_train_pairs`` (optional)
    Use only the first N HR images (by name) / at most N training pairs.

No similarity levels are given: references get ``level`` "" and ``ref_id`` =
their file stem (unique per HR image); the tiers stage assigns L1..L5 later.
Every HR must have at least one reference. All problems (missing, empty,
unreadable or too small images, HR images without references, duplicate
names, CSV rows pointing nowhere) are reported together in one error before
anything is written.

Written: ``images/test/{group}/HR.png`` (mod-cropped to ``scale``) and
``images/test/{group}/refs/{ref_id}.png`` (size unchanged), RGB uint8.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

from refsr.core.errors import RefsrError
from refsr.core.progress import progress
from refsr.data.checks import cfg_count, check_folder
from refsr.data.common import (
    IMAGE_EXTENSIONS,
    Problems,
    collect_train_pairs,
    inspect_images,
    list_images,
    normalise_image,
)
from refsr.data.layout import Dataset, TestGroup

log = logging.getLogger(__name__)


def _hr_images(hr_dir: Path, problems: Problems) -> list[Path]:
    """HR images of ``hr_dir`` with unique stems (duplicates are problems)."""
    hrs = list_images(hr_dir)
    if not hrs:
        raise RefsrError(hr_dir, f"no HR images ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
    by_stem: dict[str, Path] = {}
    for p in hrs:
        if p.stem in by_stem:
            problems.other(p, f"same name as {by_stem[p.stem].name}; HR images name test groups "
                              "by their stem, which must be unique")
        else:
            by_stem[p.stem] = p
    return list(by_stem.values())


def _add_ref(refs: dict[str, Path], ref: Path, hr: Path, problems: Problems) -> None:
    """Add ``ref`` under its stem, unless that stem is taken by another file for this HR."""
    other = refs.get(ref.stem)
    if other is None:
        refs[ref.stem] = ref
    elif os.path.realpath(other) != os.path.realpath(ref):
        problems.other(ref, f"reference name {ref.stem!r} already used for {hr.name} by {other}; "
                            "reference names (file stems) must be unique per HR image")


def refs_from_dir(refs_dir: Path, hrs: list[Path], problems: Problems) -> dict[str, dict[str, Path]]:
    """HR stem -> {ref_id: path} from ``refs_dir/{stem}/*``."""
    out: dict[str, dict[str, Path]] = {}
    for hr in hrs:
        sub = refs_dir / hr.stem
        refs: dict[str, Path] = {}
        if sub.is_dir():
            for ref in list_images(sub):
                _add_ref(refs, ref, hr, problems)
            nested = sorted(p.name for p in sub.iterdir() if p.is_dir() and not p.name.startswith("."))
            if nested:  # references are the images directly in refs/<stem>/
                log.warning("%s: %d sub-folder(s) ignored (only the images directly in it are references): %s",
                            sub, len(nested), ", ".join(nested[:10]))
        if not refs:
            problems.other(hr, f"no reference: expected a folder {refs_dir.name}/{sub.name}/ "
                               "with at least one image")
        out[hr.stem] = refs
    unused = sorted(p.name for p in refs_dir.iterdir()
                    if p.is_dir() and p.name not in out and not p.name.startswith("."))
    if unused:
        log.warning("%s: %d sub-folders match no HR image and are ignored: %s", refs_dir,
                    len(unused), ", ".join(unused[:10]))
    return out


def refs_from_csv(pairs_csv: Path, hr_dir: Path, all_hrs: list[Path], hrs: list[Path],
                  problems: Problems) -> dict[str, dict[str, Path]]:
    """HR stem -> {ref_id: path} from the rows of ``pairs_csv`` (only for ``hrs``)."""
    base = pairs_csv.parent
    known = {os.path.realpath(p): p for p in all_hrs}
    wanted = {hr.stem for hr in hrs}
    out: dict[str, dict[str, Path]] = {hr.stem: {} for hr in hrs}
    try:
        with open(pairs_csv, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [c.strip().lower() for c in next(reader, [])]
            if "hr" not in header or "ref" not in header:
                raise RefsrError(pairs_csv, f"expected a header with columns hr,ref; found {','.join(header) or 'nothing'}")
            i_hr, i_ref = header.index("hr"), header.index("ref")
            for row in reader:
                line = reader.line_num
                if not any(c.strip() for c in row):
                    continue  # blank line
                where = f"{pairs_csv.name} line {line}"
                hr_s = row[i_hr].strip() if i_hr < len(row) else ""
                ref_s = row[i_ref].strip() if i_ref < len(row) else ""
                if not hr_s or not ref_s:
                    problems.other(pairs_csv, f"line {line}: empty hr or ref")
                    continue
                hr = _resolve(hr_s, base)
                if not hr.exists() and not Path(hr_s).is_absolute() and (hr_dir / hr_s).exists():
                    hr = hr_dir / hr_s
                hr_key = os.path.realpath(hr)
                if hr_key not in known:
                    if not hr.exists():
                        problems.file(hr, f"missing HR image, listed in {where}")
                    else:
                        problems.other(hr, f"listed as hr in {where} but not an image of {hr_dir}")
                    continue
                hr = known[hr_key]
                if hr.stem not in wanted:
                    continue  # beyond cfg groups
                ref = _resolve(ref_s, base)
                if not ref.exists():
                    problems.file(ref, f"missing reference, listed in {where}")
                    continue
                _add_ref(out[hr.stem], ref, hr, problems)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RefsrError(pairs_csv, f"cannot read the CSV ({exc})") from None
    for hr in hrs:
        if not out[hr.stem]:
            problems.other(hr, f"no reference: no row of {pairs_csv.name} lists this HR image")
    return out


def _resolve(value: str, base: Path) -> Path:
    p = Path(os.path.expanduser(value))
    return Path(os.path.normpath(p if p.is_absolute() else base / p))


def build_folder(name: str, cfg: dict, out_dir: Path, scale: int = 4) -> Dataset:
    """Validate a user's folders, then write the normalised test images under ``out_dir``."""
    hr_dir, refs_dir, pairs_csv, train_dir = check_folder(name, cfg)
    n_groups = cfg_count(cfg, name, "groups")
    max_pairs = cfg_count(cfg, name, "max_train_pairs")
    out_dir = Path(out_dir)

    # 1. validate everything; nothing is written until all is well
    problems = Problems()
    all_hrs = _hr_images(hr_dir, problems)
    hrs = all_hrs[:n_groups] if n_groups else all_hrs
    if refs_dir is not None:
        refs = refs_from_dir(refs_dir, hrs, problems)
    else:
        refs = refs_from_csv(pairs_csv, hr_dir, all_hrs, hrs, problems)
    images = list(dict.fromkeys([*hrs, *(p for r in refs.values() for p in r.values())]))
    infos = inspect_images(progress(images, f"check {name}", logger=log), problems)
    pairs = collect_train_pairs(train_dir, problems, max_pairs) if train_dir else []
    problems.raise_if_any()

    # 2. write
    ds = Dataset(name=name, root=out_dir)
    for hr_src in progress(hrs, f"write {name}", logger=log):
        gdir = out_dir / "images" / "test" / hr_src.stem
        hr = gdir / "HR.png"
        normalise_image(hr_src, hr, crop_to=scale, info=infos[hr_src])
        g = TestGroup(hr_src.stem, hr=hr)
        for ref_id, src in refs[hr_src.stem].items():
            dst = gdir / "refs" / f"{ref_id}.png"
            normalise_image(src, dst, info=infos[src])
            g.refs[ref_id] = dst
            g.levels[ref_id] = ""
            g.sources[ref_id] = src
        ds.groups.append(g)
    ds.train = pairs
    n_refs = sum(len(g.refs) for g in ds.groups)
    log.info("%s: %d test groups with %d candidate references from %s, %d training pairs",
             name, len(ds.groups), n_refs, hr_dir, len(pairs))
    return ds

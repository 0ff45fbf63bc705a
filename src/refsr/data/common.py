"""Helpers shared by the dataset builders that read a user's folders (``cufed5``, ``folder`` and
the standard test sets ``sun80``, ``urban100``, ``manga109``, ``wrsr``).

A builder works in two phases so that bad input never leaves a partial dataset:

1. *validate*: every expected file is checked (test images are fully decoded,
   training files only checked for existence and non-zero size) and every
   problem is collected in a :class:`Problems` list, raised at the end as one
   :class:`DatasetError` naming the folder, the count and the first few files;
2. *write*: only then are the normalised copies written (:func:`normalise_image`).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from refsr.core.atomic import atomic_path
from refsr.core.errors import RefsrError
from refsr.core.imageio import IMAGE_EXTENSIONS, MIN_SIDE, check_min_size, read_image, write_image
from refsr.data.layout import TestGroup, TrainPair
from refsr.data.resize import modcrop

log = logging.getLogger(__name__)

MAX_LISTED = 8  # problems named in the one-line message; the rest are counted
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- problems


class DatasetError(RefsrError):
    """Several problems with a dataset's files, reported at once; ``problems`` lists them all."""

    def __init__(self, where, problem: str, problems: Sequence[tuple[str, str]]):
        super().__init__(where, problem)
        self.problems = list(problems)


class Problems:
    """Collects ``(path, problem)`` pairs and raises them together as one :class:`DatasetError`."""

    def __init__(self) -> None:
        self.items: list[tuple[Path, str, bool]] = []  # (path, problem, is a file problem)

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def file(self, path: str | os.PathLike, problem: str) -> None:
        """A missing, empty or unreadable file."""
        self.items.append((Path(path), problem, True))

    def other(self, path: str | os.PathLike, problem: str) -> None:
        """Any other problem tied to a path (too small, duplicate name, no reference, ...)."""
        self.items.append((Path(path), problem, False))

    def error(self, path: str | os.PathLike, err: RefsrError) -> None:
        """Record a RefsrError raised for ``path`` (from :func:`~refsr.imageio.read_image` etc.)."""
        problem = {"file not found": "missing", "empty file, expected an image": "empty"}.get(
            err.problem, err.problem)
        is_file = not problem.startswith(("image is ", "too small"))
        self.items.append((Path(path), problem, is_file))

    def raise_if_any(self) -> None:
        """Raise one :class:`DatasetError` if anything was recorded.

        The message names the folder (the common parent of the problem paths),
        the count, and the first :data:`MAX_LISTED` problems with paths relative
        to that folder. Every problem is also logged, and kept in ``.problems``.
        """
        if not self.items:
            return
        paths = [os.path.abspath(str(p)) for p, _, _ in self.items]
        try:
            where = Path(os.path.commonpath(paths))
        except ValueError:  # different drives
            where = Path(paths[0]).parent
        if str(where) in paths:
            where = where.parent  # the common path is a problem file itself: name its folder
        n = len(self.items)
        if all(is_file for _, _, is_file in self.items):
            head = f"{n} file{'s' if n != 1 else ''} missing or unreadable"
        else:
            head = f"{n} problem{'s' if n != 1 else ''} with the dataset's files"
        listed = [f"{_relname(p, where)} ({problem})" for p, problem, _ in self.items[:MAX_LISTED]]
        if n > MAX_LISTED:
            listed.append(f"... and {n - MAX_LISTED} more (all listed in the log)")
        for p, problem, _ in self.items:
            log.error("%s: %s", p, problem)
        raise DatasetError(where, f"{head}: {', '.join(listed)}",
                           [(str(p), problem) for p, problem, _ in self.items])


def _relname(path: Path, root: Path) -> str:
    try:
        return str(Path(os.path.abspath(str(path))).relative_to(root))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- images


def is_image_file(path: Path) -> bool:
    """An accepted image extension (case-insensitive), not hidden."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder`` (sorted by name; sub-folders and other files ignored)."""
    return sorted((p for p in Path(folder).iterdir() if is_image_file(p) and p.is_file()),
                  key=lambda p: p.name)


@dataclass(frozen=True)
class ImageInfo:
    """What validation learnt about an image file (decoded once, then dropped)."""

    path: Path
    height: int
    width: int
    plain_png: bool  # an 8-bit RGB single-frame PNG: normalising it is a byte copy


def _is_plain_png(path: Path) -> bool:
    """A single-frame PNG of 8-bit truecolour (IHDR bit depth 8, colour type 2)."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    if len(head) < 26 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return False
    if head[24] != 8 or head[25] != 2:
        return False
    with Image.open(path) as im:  # header only
        return im.mode == "RGB" and not getattr(im, "is_animated", False)


def inspect_image(path: Path, min_px: int = MIN_SIDE) -> ImageInfo:
    """Fully decode ``path`` (catching truncation) and check its size; raise RefsrError otherwise."""
    arr = read_image(path)
    check_min_size(arr, path, min_side=min_px)
    return ImageInfo(Path(path), arr.shape[0], arr.shape[1], _is_plain_png(Path(path)))


def inspect_images(paths: Iterable[Path], problems: Problems, min_px: int = MIN_SIDE) -> dict[Path, ImageInfo]:
    """:func:`inspect_image` on each path, recording every failure in ``problems``."""
    infos: dict[Path, ImageInfo] = {}
    for p in paths:
        try:
            infos[p] = inspect_image(p, min_px)
        except RefsrError as err:
            problems.error(p, err)
    return infos


def normalise_image(src: Path, dst: Path, crop_to: int | None = None,
                    info: ImageInfo | None = None) -> tuple[int, int]:
    """Write ``src`` as an RGB uint8 PNG at ``dst`` (atomically), mod-cropped to ``crop_to`` if given.

    A source that is already an 8-bit RGB PNG needing no crop is copied byte for
    byte (same pixels, no re-encoding). Returns the written ``(height, width)``.
    """
    if info is None:
        info = ImageInfo(Path(src), 0, 0, _is_plain_png(Path(src)))
    if info.plain_png and info.height and (
            crop_to is None or (info.height % crop_to == 0 and info.width % crop_to == 0)):
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
        return info.height, info.width
    arr = read_image(src)
    if crop_to is not None:
        arr = modcrop(arr, crop_to)
    write_image(dst, arr)
    return arr.shape[0], arr.shape[1]


def unique_stems(paths: Iterable[Path], problems: Problems, what: str) -> dict[str, Path]:
    """Stem -> path of ``paths``; a second file with a stem already taken is a problem
    (``what`` names the role the stem plays, e.g. "test groups")."""
    out: dict[str, Path] = {}
    for p in paths:
        if p.stem in out:
            problems.other(p, f"same name as {out[p.stem].name}; {what} are named by the file "
                              "stem, which must be unique")
        else:
            out[p.stem] = p
    return out


def write_test_group(out_dir: Path, name: str, hr_src: Path, refs: dict[str, tuple[Path, str]],
                     infos: dict[Path, ImageInfo], scale: int) -> tuple[TestGroup, bool]:
    """Write test group ``name`` under ``out_dir/images/test/{name}/``: ``HR.png`` mod-cropped to
    ``scale`` and every reference (``ref_id -> (source, level)``, level "" if none) as
    ``refs/{ref_id}.png``, size unchanged. Returns the group and whether the HR was cropped."""
    gdir = Path(out_dir) / "images" / "test" / name
    info = infos[hr_src]
    shape = normalise_image(hr_src, gdir / "HR.png", crop_to=scale, info=info)
    group = TestGroup(name, hr=gdir / "HR.png")
    for ref_id, (src, level) in refs.items():
        dst = gdir / "refs" / f"{ref_id}.png"
        normalise_image(src, dst, info=infos[src])
        group.refs[ref_id] = dst
        group.levels[ref_id] = level
        group.sources[ref_id] = Path(src)
    return group, shape != (info.height, info.width)


# --------------------------------------------------------------------------- training pairs


def collect_train_pairs(train_dir: Path, problems: Problems,
                        max_pairs: int | None = None) -> list[TrainPair]:
    """Pairs ``input/X`` + ``ref/X`` of a CUFED-style training folder, read in place.

    Checks existence and non-zero size only (no decoding: CUFED has 11,871 pairs):
    the folder must hold ``input/`` and ``ref/``, ``input/`` at least one image,
    and every input a same-named reference. Pair names are the file stems, which
    must be unique. At most ``max_pairs`` pairs (first by name) are returned; all
    are validated.
    """
    train_dir = Path(train_dir)
    in_dir, ref_dir = train_dir / "input", train_dir / "ref"
    for sub in (in_dir, ref_dir):
        if not sub.is_dir():
            problems.file(sub, "missing folder (a training set holds input/ and ref/)")
    if not (in_dir.is_dir() and ref_dir.is_dir()):
        return []
    inputs = list_images(in_dir)
    if not inputs:
        problems.other(in_dir, f"no images ({', '.join(IMAGE_EXTENSIONS)})")
        return []
    pairs: list[TrainPair] = []
    seen: dict[str, Path] = {}
    for inp in inputs:
        ref = ref_dir / inp.name
        ok = True
        for p in (inp, ref):
            try:
                size = p.stat().st_size
            except FileNotFoundError:
                problems.file(p, "missing" if p is inp else f"missing: no reference for input/{inp.name}")
                ok = False
                continue
            if not p.is_file():
                problems.file(p, "not a file")
                ok = False
            elif size == 0:
                problems.file(p, "empty")
                ok = False
        if inp.stem in seen:
            problems.other(inp, f"same name as {seen[inp.stem].name}; pair names (stems) must be unique")
            ok = False
        seen.setdefault(inp.stem, inp)
        if ok:
            pairs.append(TrainPair(inp.stem, inp, ref))
    if max_pairs is not None:
        pairs = pairs[:max_pairs]
    return pairs

"""The on-disk layout every dataset builder produces, and its manifest.

A built dataset lives in ``results/data/{name}/``::

    manifest.csv          one row per image: split, group, role, level, path
    images/...            normalised copies (RGB uint8 PNG, test HR mod-cropped)

``split`` is ``test`` or ``train``. Test rows have role ``hr`` (level empty) or
``ref`` (level ``L1``..``L5`` when the dataset defines levels, empty for a
``folder`` dataset, or ``sun80`` with every scene match, whose candidates are tiered
later from similarity scores; ``ref_id`` names the reference). A group may have no
``ref`` row at all (``urban100``, ``manga109``: the LR is its own reference). Train rows
have role ``input`` or ``ref``.
Paths are relative to the manifest's folder unless absolute (large user
training sets are read in place rather than copied).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from refsr.core.atomic import atomic_path
from refsr.core.errors import RefsrError

LEVELS = ("L1", "L2", "L3", "L4", "L5")  # most -> least similar reference
#: Every reference of a test group at once: ``ALL`` = one multi-reference search over them,
#: ``ALL_STITCHED`` = TTSR's / SRNTT's CUFED5 test input (each padded to 500x500, stacked).
REFERENCE_SETS = ("ALL", "ALL_STITCHED")
#: plus SISR mode (LR as its own reference) and the oracle (HR as the reference)
EVAL_LEVELS = LEVELS + REFERENCE_SETS + ("LR", "HR")
COLUMNS = ("split", "group", "role", "ref_id", "level", "path")


@dataclass
class TestGroup:
    """One test image: its HR and its candidate references (``ref_id`` -> path)."""

    name: str
    hr: Path
    refs: dict[str, Path] = field(default_factory=dict)
    levels: dict[str, str] = field(default_factory=dict)  # ref_id -> given level ('' if none)
    #: ref_id -> the user's file a reference was written from (builders that copy one; not in
    #: the manifest): what :mod:`refsr.data.hr_copies` names
    sources: dict[str, Path] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class TrainPair:
    """One training pair: an HR input patch and its reference."""

    name: str
    input: Path
    ref: Path


@dataclass
class Dataset:
    """A built dataset: test groups and training pairs, paths resolved."""

    name: str
    root: Path
    groups: list[TestGroup] = field(default_factory=list)
    train: list[TrainPair] = field(default_factory=list)

    @property
    def has_levels(self) -> bool:
        return all(g.levels.get(r) for g in self.groups for r in g.refs)

    def group(self, name: str) -> TestGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise RefsrError(self.root / "manifest.csv", f"no test group {name!r}")


def _rel(path: Path, root: Path) -> str:
    path = Path(path)
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path.resolve())


def write_manifest(ds: Dataset, path: str | os.PathLike) -> None:
    """Atomically write ``ds`` as ``manifest.csv`` (paths relative to ``ds.root``)."""
    rows = []
    for g in ds.groups:
        rows.append(("test", g.name, "hr", "", "", _rel(g.hr, ds.root)))
        for ref_id, p in g.refs.items():
            rows.append(("test", g.name, "ref", ref_id, g.levels.get(ref_id, ""), _rel(p, ds.root)))
    for t in ds.train:
        rows.append(("train", t.name, "input", "", "", _rel(t.input, ds.root)))
        rows.append(("train", t.name, "ref", "", "", _rel(t.ref, ds.root)))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        w.writerows(rows)


def read_manifest(path: str | os.PathLike, name: str | None = None) -> Dataset:
    """Read a manifest written by :func:`write_manifest`."""
    path = Path(path)
    if not path.is_file():
        raise RefsrError(path, "dataset manifest not found; build the dataset first")
    root = path.parent
    ds = Dataset(name=name or root.name, root=root)
    groups: dict[str, TestGroup] = {}
    train_in: dict[str, Path] = {}
    train_ref: dict[str, Path] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or tuple(reader.fieldnames) != COLUMNS:
            raise RefsrError(path, f"not a refsr manifest (columns {reader.fieldnames})")
        for row in reader:
            p = Path(row["path"])
            p = p if p.is_absolute() else root / p
            if row["split"] == "test":
                g = groups.setdefault(row["group"], TestGroup(row["group"], hr=Path()))
                if row["role"] == "hr":
                    g.hr = p
                else:
                    g.refs[row["ref_id"]] = p
                    g.levels[row["ref_id"]] = row["level"]
            elif row["role"] == "input":
                train_in[row["group"]] = p
            else:
                train_ref[row["group"]] = p
    ds.groups = list(groups.values())
    ds.train = [TrainPair(k, train_in[k], train_ref[k]) for k in train_in if k in train_ref]
    return ds

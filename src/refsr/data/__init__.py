"""Dataset builders. Each returns a :class:`~refsr.data.layout.Dataset` whose images
are written under ``out_dir/images``; :func:`build` dispatches on ``cfg['kind']`` and then
excludes every reference that is a copy of its HR image, with a warning
(:mod:`refsr.data.hr_copies`)."""

from __future__ import annotations

from pathlib import Path

from refsr.core.errors import RefsrError
from refsr.data.checks import check_dataset, check_datasets
from refsr.data.hr_copies import drop_hr_copies
from refsr.data.layout import (
    EVAL_LEVELS,
    LEVELS,
    Dataset,
    TestGroup,
    TrainPair,
    read_manifest,
    write_manifest,
)

__all__ = [
    "EVAL_LEVELS", "LEVELS", "Dataset", "TestGroup", "TrainPair", "build", "check_datasets", "read_manifest",
    "write_manifest",
]


def build(name: str, cfg: dict, out_dir: Path, scale: int = 4) -> Dataset:
    """Build dataset ``name`` described by ``cfg`` into ``out_dir`` (which must exist)."""
    check_dataset(name, cfg)  # the cheap checks the DAG build runs too (refsr.data.checks)
    kind = cfg["kind"]
    if kind == "embedded":
        from refsr.data.embedded import build_embedded as builder
    elif kind == "cufed5":
        from refsr.data.cufed5 import build_cufed5 as builder
    elif kind == "folder":
        from refsr.data.folder import build_folder as builder
    elif kind == "sun80":
        from refsr.data.sun80 import build_sun80 as builder
    elif kind in ("urban100", "manga109"):
        from refsr.data.hr_only import build_hr_only as builder
    elif kind == "wrsr":
        from refsr.data.wrsr import build_wrsr as builder
    else:  # pragma: no cover - check_dataset refused it
        raise RefsrError(f"datasets.{name}.kind", f"unknown dataset kind {kind!r}")
    ds = builder(name, cfg, Path(out_dir), scale)
    drop_hr_copies(ds, scale)  # a reference that is the HR itself would make its level the oracle
    return ds


def build_to(name: str, cfg: dict, root: Path, scale: int = 4) -> Dataset:
    """Build dataset ``name`` into ``root`` (``images/`` and ``manifest.csv``) all or nothing.

    The dataset is built in a hidden staging folder beside ``root``; ``images/``
    and then ``manifest.csv`` are renamed into place only once everything was
    written, so a failed or interrupted build leaves no partial dataset.
    """
    import os
    import shutil

    from refsr.core.atomic import atomic_dir

    root = Path(root)
    with atomic_dir(root.parent / f".{root.name}.staging") as stage:
        ds = build(name, cfg, stage, scale)
        write_manifest(ds, stage / "manifest.csv")
        root.mkdir(parents=True, exist_ok=True)
        if (root / "images").exists():
            shutil.rmtree(root / "images")
        os.replace(stage / "images", root / "images")
        os.replace(stage / "manifest.csv", root / "manifest.csv")
    shutil.rmtree(root.parent / f".{root.name}.staging", ignore_errors=True)  # emptied: not left behind
    return read_manifest(root / "manifest.csv", name)

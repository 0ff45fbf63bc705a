"""Dataset builders. Each returns a :class:`~refsr.datasets.layout.Dataset` whose images
are written under ``out_dir/images``; :func:`build` dispatches on ``cfg['kind']``."""

from __future__ import annotations

from pathlib import Path

from ..errors import RefsrError
from .layout import EVAL_LEVELS, LEVELS, Dataset, TestGroup, TrainPair, read_manifest, write_manifest

__all__ = [
    "EVAL_LEVELS", "LEVELS", "Dataset", "TestGroup", "TrainPair", "build", "read_manifest",
    "write_manifest",
]


def build(name: str, cfg: dict, out_dir: Path, scale: int = 4) -> Dataset:
    """Build dataset ``name`` described by ``cfg`` into ``out_dir`` (which must exist)."""
    kind = cfg.get("kind")
    if kind == "embedded":
        from .embedded import build_embedded as builder
    elif kind == "cufed5":
        from .cufed5 import build_cufed5 as builder
    elif kind == "folder":
        from .folder import build_folder as builder
    else:
        raise RefsrError(f"datasets.{name}.kind", f"unknown dataset kind {kind!r} (embedded, cufed5, folder)")
    return builder(name, cfg, Path(out_dir), scale)

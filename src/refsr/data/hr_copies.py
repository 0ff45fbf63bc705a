"""Candidate references that are copies of their test image's HR are excluded, with a warning.

Issue 28, case 3: a reference identical to the input's HR (a symlink or copy in a ``folder``
dataset's ``refs/<image>/``, a CUFED5 ``_1`` that is the ``_0``) became L1 without a word, and
that level's numbers were then the oracle's. Every dataset kind's references pass through
:func:`drop_hr_copies` once, from :func:`refsr.data.build`, after the builder wrote the
normalised images and before the manifest is written: so neither the tiers, nor any level
(L1..L5, ALL, ALL_STITCHED), nor training ever sees such a reference.

A reference is a copy of its HR when, compared with the written (mod-cropped) HR, either it has
the same size or, mod-cropped to ``scale`` like the HR, it has; and its mean absolute difference
from the HR is below :data:`COPY_MAD` = 0.5 grey levels (0..255, all channels): identical files,
symlinks, lossless re-encodings and the uncropped original all are. A real reference of the same
scene differs by far more. Only references of the HR's size are decoded (the size is read from
the PNG header first), so the check costs one decode of such candidates.

An excluded reference is removed from the dataset (its written copy deleted) and logged as one
warning naming its source file; a test image left without any reference keeps its HR and has
L1..L5, ALL and ALL_STITCHED structurally absent (like a dataset without references).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from refsr.core.imageio import read_image
from refsr.data.layout import Dataset, TestGroup
from refsr.data.resize import modcrop

log = logging.getLogger(__name__)

#: Mean absolute difference (grey levels 0..255) below which a reference counts as the HR itself.
COPY_MAD = 0.5


def _size(path: Path) -> tuple[int, int]:
    """``(height, width)`` from the image header (no decoding)."""
    with Image.open(path) as im:
        return im.size[1], im.size[0]


def hr_difference(hr: np.ndarray, ref: np.ndarray, scale: int) -> float | None:
    """Mean absolute difference of ``ref`` from ``hr`` (as is, or mod-cropped to ``scale``);
    ``None`` when neither has the HR's size."""
    if ref.shape != hr.shape:
        ref = modcrop(ref, scale)
        if ref.shape != hr.shape:
            return None
    return float(np.abs(hr.astype(np.int16) - ref.astype(np.int16)).mean())


def _copies(group: TestGroup, scale: int) -> dict[str, float]:
    """``ref_id -> difference`` of the references of ``group`` that are copies of its HR."""
    hr_hw = _size(group.hr)
    hr = None
    out: dict[str, float] = {}
    for rid, path in group.refs.items():
        h, w = _size(path)
        if (h, w) != hr_hw and (h - h % scale, w - w % scale) != hr_hw:
            continue
        if hr is None:
            hr = read_image(group.hr)
        mad = hr_difference(hr, read_image(path), scale)
        if mad is not None and mad < COPY_MAD:
            out[rid] = mad
    return out


def drop_hr_copies(ds: Dataset, scale: int) -> list[tuple[str, str]]:
    """Remove from ``ds`` every reference that is a copy of its group's HR (the module
    docstring), deleting its written image and logging one warning per reference. Returns the
    ``(group, ref_id)`` removed."""
    removed: list[tuple[str, str]] = []
    for g in ds.groups:
        for rid, mad in _copies(g, scale).items():
            path = g.refs.pop(rid)
            g.levels.pop(rid, None)
            source = g.sources.pop(rid, path)
            path.unlink(missing_ok=True)
            left = "" if g.refs else f"; {g.name} has no reference left"
            log.warning("%s: reference %r of test image %r is a copy of its HR image (mean absolute "
                        "difference %.2f grey levels); excluded, its level would be the oracle's%s",
                        source, rid, g.name, mad, left)
            removed.append((g.name, rid))
    return removed

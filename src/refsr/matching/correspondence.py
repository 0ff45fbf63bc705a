"""The result of SRNTT's patch matching, and its compact cache file (int32 indices + fp16 S*)."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from refsr.core.atomic import atomic_path
from refsr.core.errors import RefsrError

_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Correspondence:
    """Best reference patch for every content position at relu3_1.

    ``index``: ``H x W`` int64, flat index into the concatenated patch grids of all references.
    ``score``: ``H x W`` SRNTT ``S*``. ``cosine``: ``H x W`` best-match cosine (``None`` when
    loaded from a cache file, which stores only what training needs).
    ``ref_shapes``: each reference's relu3_1 map size ``(Hr, Wr)``. ``patch``: patch side.
    """

    index: Tensor
    score: Tensor
    ref_shapes: tuple[tuple[int, int], ...]
    cosine: Tensor | None = None
    patch: int = 3

    @property
    def grid_shapes(self) -> tuple[tuple[int, int], ...]:
        """Patch-grid size ``(Hr - p + 1, Wr - p + 1)`` of each reference."""
        p = self.patch
        return tuple((h - p + 1, w - p + 1) for h, w in self.ref_shapes)

    @property
    def offsets(self) -> tuple[int, ...]:
        """Start of each reference's block of flat indices, plus the total at the end."""
        out = [0]
        for gh, gw in self.grid_shapes:
            out.append(out[-1] + gh * gw)
        return tuple(out)

    @property
    def ref_id(self) -> Tensor:
        """``H x W`` int64: which reference each content position was matched to."""
        bounds = torch.tensor(self.offsets[1:-1], dtype=self.index.dtype, device=self.index.device)
        return torch.bucketize(self.index, bounds, right=True)

    @property
    def grid_pos(self) -> tuple[Tensor, Tensor]:
        """``(gy, gx)``: patch-grid cell (= patch top-left) in the matched reference."""
        rid = self.ref_id
        starts = torch.tensor(self.offsets[:-1], device=self.index.device)[rid]
        widths = torch.tensor([gw for _, gw in self.grid_shapes], device=self.index.device)[rid]
        local = self.index.long() - starts
        return local // widths, local % widths

    @property
    def pos(self) -> tuple[Tensor, Tensor]:
        """``(y, x)``: matched patch centre in the reference's relu3_1 map."""
        gy, gx = self.grid_pos
        return gy + self.patch // 2, gx + self.patch // 2

    def to(self, device: str | torch.device) -> Correspondence:
        """A copy with all tensors on ``device``."""
        cos = None if self.cosine is None else self.cosine.to(device)
        return replace(self, index=self.index.to(device), score=self.score.to(device), cosine=cos)



def save_correspondence(path: str | Path, corr: Correspondence) -> None:
    """Write ``corr`` atomically as a compressed ``.npz``: int32 index, fp16 S*, grid shapes,
    and the fp16 best-match cosine when ``corr`` has it (the official recipe's weighted texture
    loss uses it; files without it still load)."""
    score = corr.score.detach().cpu().numpy().astype(np.float16)
    if not np.isfinite(score).all():
        raise RefsrError(path, "S* does not fit in float16 (non-finite after conversion)")
    arrays = dict(index=corr.index.cpu().numpy().astype(np.int32), score=score,
                  ref_shapes=np.asarray(corr.ref_shapes, dtype=np.int32).reshape(-1, 2),
                  patch=np.int32(corr.patch), version=np.int32(_FORMAT_VERSION))
    if corr.cosine is not None:
        arrays["cosine"] = corr.cosine.detach().cpu().numpy().astype(np.float16)
    # Writing through a file object stops numpy from appending ".npz" to the temporary name.
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def load_correspondence(path: str | Path, device: str | torch.device = "cpu") -> Correspondence:
    """Read a file written by :func:`save_correspondence` (``cosine`` is ``None`` when the
    file has none)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {key: z[key] for key in ("index", "score", "ref_shapes", "patch", "version")}
            cosine = z["cosine"] if "cosine" in z.files else None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise RefsrError(path, f"not a readable correspondence file ({type(err).__name__}: {err})") from None
    if int(arrays["version"]) != _FORMAT_VERSION:
        raise RefsrError(path, f"correspondence format version {int(arrays['version'])}, "
                               f"expected {_FORMAT_VERSION}")
    index, score, shapes = arrays["index"], arrays["score"], arrays["ref_shapes"]
    corr = Correspondence(index=torch.from_numpy(index.astype(np.int64)).to(device),
                          score=torch.from_numpy(score.astype(np.float32)).to(device),
                          ref_shapes=tuple((int(h), int(w)) for h, w in shapes.reshape(-1, 2)),
                          patch=int(arrays["patch"]),
                          cosine=None if cosine is None else torch.from_numpy(cosine.astype(np.float32)).to(device))
    if index.ndim != 2 or score.shape != index.shape or not corr.ref_shapes or \
            (cosine is not None and cosine.shape != index.shape):
        raise RefsrError(path, f"inconsistent shapes: index {index.shape}, score {score.shape}")
    if index.size and (index.min() < 0 or index.max() >= corr.offsets[-1]):
        raise RefsrError(path, "patch index out of range for the stored reference grids")
    return corr


"""Training data: (HR, LR, reference[, cached correspondence]) pairs and a resumable sampler.

The sampler is a pure function of (seed, iteration): iteration ``i`` takes batch
``i`` of an endless sequence of seeded epoch permutations. A resumed run therefore
sees exactly the batches an uninterrupted run would, with no RNG state to save.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .datasets.layout import Dataset
from .datasets.lr import lr_path
from .errors import RefsrError
from .imageio import read_image, to_tensor
from .progress import progress
from .resize import down_up, modcrop, upscale
from .swap import Correspondence, correspond, load_correspondence, save_correspondence

log = logging.getLogger(__name__)


def correspondence_path(corr_dir: Path, pair: str) -> Path:
    return Path(corr_dir) / f"{pair}.npz"


def build_correspondence_cache(ds: Dataset, lr_dir: Path, out_dir: Path, vgg, scale: int = 4,
                               resize: str = "matlab", max_mb: float = 256) -> int:
    """Match every training pair once (relu3_1 indices int32 + S* fp16) into ``out_dir``.

    Returns the total bytes written. ``out_dir`` appears only when complete.
    """
    from .atomic import atomic_dir

    total = 0
    with atomic_dir(out_dir) as tmp:
        for pair in progress(ds.train, f"correspondences {ds.name}", logger=log):
            lr = read_image(lr_path(lr_dir, "train", pair.name))
            ref = read_image(pair.ref)
            lr_up = to_tensor(upscale(lr, scale, resize))
            ref_du = to_tensor(down_up(ref, scale, resize))
            corr = correspond(lr_up, [to_tensor(ref)], vgg, max_mb=max_mb, refs_down_up=[ref_du])
            path = correspondence_path(tmp, pair.name)
            save_correspondence(path, corr)
            total += path.stat().st_size
    n = max(1, len(ds.train))
    log.info("cached %d correspondences, %.0f bytes per pair on average", len(ds.train), total / n)
    return total


@dataclass
class Sample:
    hr: Tensor  # 3 x H x W in [0, 1], mod-cropped
    lr: Tensor  # 3 x H/s x W/s
    ref: Tensor  # 3 x Hr x Wr
    corr: Correspondence | None


class TrainingSet:
    """Training pairs of a built dataset, read lazily from disk."""

    def __init__(self, ds: Dataset, lr_dir: Path, corr_dir: Path | None = None, scale: int = 4):
        if not ds.train:
            raise RefsrError(ds.root / "manifest.csv", f"dataset {ds.name!r} has no training pairs")
        self.pairs, self.lr_dir, self.corr_dir, self.scale = ds.train, Path(lr_dir), corr_dir, scale

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> Sample:
        pair = self.pairs[i]
        hr = modcrop(read_image(pair.input), self.scale)
        lr = read_image(lr_path(self.lr_dir, "train", pair.name))
        corr = None
        if self.corr_dir is not None:
            corr = load_correspondence(correspondence_path(self.corr_dir, pair.name))
        return Sample(to_tensor(hr)[0], to_tensor(lr)[0], to_tensor(read_image(pair.ref))[0], corr)


def batch_indices(n: int, batch_size: int, seed: int, iteration: int) -> list[int]:
    """Indices of batch ``iteration``: consecutive slices of seeded per-epoch permutations."""
    start = iteration * batch_size
    out: list[int] = []
    while len(out) < batch_size:
        epoch, pos = divmod(start + len(out), n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
        take = min(batch_size - len(out), n - pos)
        out += perm[pos:pos + take].tolist()
    return out


def collate(samples: list[Sample]) -> dict:
    """Stack a batch; every sample of a batch must have the same HR and reference size."""
    shapes = {(tuple(s.hr.shape), tuple(s.ref.shape)) for s in samples}
    if len(shapes) != 1:
        raise RefsrError("training pairs", f"a batch mixes sizes {sorted(shapes)}; training pairs must share one size")
    batch = {"hr": torch.stack([s.hr for s in samples]), "lr": torch.stack([s.lr for s in samples]),
             "ref": torch.stack([s.ref for s in samples])}
    if samples[0].corr is not None:
        batch["corr"] = [s.corr for s in samples]
    return batch

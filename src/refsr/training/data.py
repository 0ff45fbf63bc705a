"""Training data: (HR, LR, reference[, cached correspondence]) pairs and a resumable sampler.

The sampler is a pure function of (seed, iteration): iteration ``i`` takes batch
``i`` of an endless sequence of seeded epoch permutations. A resumed run therefore
sees exactly the batches an uninterrupted run would, with no RNG state to save.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from refsr.core.atomic import atomic_dir
from refsr.core.errors import RefsrError
from refsr.core.imageio import MIN_SIDE, read_image, to_tensor
from refsr.core.progress import progress
from refsr.data.layout import Dataset
from refsr.data.lr import lr_path
from refsr.data.resize import degrade, down_up, modcrop, upscale
from refsr.matching import (
    Correspondence,
    extract_features,
    load_correspondence,
    match,
    save_correspondence,
)

log = logging.getLogger(__name__)


def correspondence_path(corr_dir: Path, pair: str) -> Path:
    return Path(corr_dir) / f"{pair}.npz"


def build_correspondence_cache(ds: Dataset, lr_dir: Path, out_dir: Path, vgg, scale: int = 4,
                               resize: str = "matlab", max_mb: float = 256, batch_size: int = 16,
                               upscaler=None) -> int:
    """Match every training pair once (relu3_1 indices int32 + S* fp16) into ``out_dir``.

    Pairs are taken ``batch_size`` at a time; those of equal LR and reference size share one
    bicubic resize per step (MATLAB resizing is per channel, so the images are stacked along
    the channel axis) and one VGG pass for LR↑ and one for Ref↓↑. Each pair is then matched
    as :func:`refsr.matching.correspond` would. Returns the total bytes written. ``out_dir``
    appears only when complete.

    ``upscaler`` (a callable on ``N x 3 x h x w`` images in [0, 1], ``x scale``) replaces the bicubic
    upscaling: the content is then φ(upscaler(LR)) and the candidates φ(upscaler(Ref↓)), what the
    released ``offline_patchMatch_textureSwap.py`` does with its upscaling network
    (:func:`released_upscaler`).
    """
    pairs = list(ds.train)
    batch_size = max(1, int(batch_size))
    starts = range(0, len(pairs), batch_size)
    total = 0
    with atomic_dir(out_dir) as tmp:
        for start in progress(starts, f"correspondences {ds.name}", total=len(starts), logger=log):
            chunk = pairs[start:start + batch_size]
            lrs = [read_image(lr_path(lr_dir, "train", pair.name)) for pair in chunk]
            refs = [read_image(pair.ref) for pair in chunk]
            groups: dict[tuple, list[int]] = {}
            for i, (pair, lr, ref) in enumerate(zip(chunk, lrs, refs, strict=True)):
                if min(ref.shape[:2]) < MIN_SIDE:
                    raise RefsrError(pair.ref, f"reference is {ref.shape[1]}x{ref.shape[0]} px, smaller than "
                                               f"one 3x3 patch at relu3_1 ({MIN_SIDE}x{MIN_SIDE} px)")
                groups.setdefault((lr.shape, ref.shape), []).append(i)
            for members in groups.values():
                if upscaler is None:
                    lr_up = _resize_stacked([lrs[i] for i in members], lambda im: upscale(im, scale, resize), resize)
                    ref_du = _resize_stacked([refs[i] for i in members], lambda im: down_up(im, scale, resize), resize)
                    lr_up_t = torch.cat([to_tensor(x) for x in lr_up])
                    ref_du_t = torch.cat([to_tensor(x) for x in ref_du])
                else:
                    ref_lr = _resize_stacked([refs[i] for i in members], lambda im: degrade(im, scale, resize)[1], resize)
                    with torch.no_grad():
                        lr_up_t = upscaler(torch.cat([to_tensor(lrs[i]) for i in members]))
                        ref_du_t = upscaler(torch.cat([to_tensor(x) for x in ref_lr]))
                content = extract_features(vgg, lr_up_t, ("relu3_1",))["relu3_1"]
                cands = extract_features(vgg, ref_du_t, ("relu3_1",))["relu3_1"]
                for j, i in enumerate(members):
                    corr = match(content[j], [cands[j]], patch=3, max_mb=max_mb)
                    path = correspondence_path(tmp, chunk[i].name)
                    save_correspondence(path, corr)
                    total += path.stat().st_size
    n = max(1, len(pairs))
    log.info("cached %d correspondences, %.0f bytes per pair on average", len(pairs), total / n)
    return total


def released_upscaler(n_blocks: int, n_feats: int, seed: int):
    """The released offline script's upscaling network as it runs there: an official SRResNet
    (:class:`refsr.models.srntt_official.SRResNetOfficial`) with the released random
    initialisation, never trained (the script runs ``global_variables_initializer`` and loads no
    weights), in inference mode; seeded by ``seed``. Returns ``images [0, 1] -> x4 images [0, 1]``."""
    from refsr.models.srntt_official import SRResNetOfficial

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SRResNetOfficial(n_blocks=n_blocks, n_feats=n_feats).eval()

    def run(images: Tensor) -> Tensor:
        with torch.no_grad():
            return net(images)

    return run


def sisr_upscaler(checkpoint: str | Path):
    """A trained SISR checkpoint (``srresnet`` or ``srgan``, any recipe) as ``images [0, 1] ->
    x4 images [0, 1]``: what the authors say their matching upscaled with (SRNTT issue #13)."""
    from refsr.models.checkpoint import load_checkpoint

    net, _ = load_checkpoint(checkpoint, expected=("srresnet", "srgan"))

    def run(images: Tensor) -> Tensor:
        with torch.no_grad():
            return net(images).clamp(0, 1)

    return run


def _resize_stacked(images: list[np.ndarray], fn, resize: str) -> list[np.ndarray]:
    """``[fn(im) for im in images]`` for equal-size RGB images, in one call for MATLAB resizing."""
    if resize != "matlab" or len(images) == 1:
        return [fn(im) for im in images]
    out = fn(np.concatenate(images, axis=2))
    return [out[..., 3 * k:3 * k + 3] for k in range(len(images))]


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

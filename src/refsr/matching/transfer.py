"""From images to swapped maps: Ref down-up, VGG19 features, matching, swapping.

Images are ``1 x 3 x H x W`` tensors in [0, 1]. :func:`correspond` matches φ(LR↑) against
φ(Ref↓↑) at relu3_1; :func:`transfer` adds the swapped maps of φ(Ref).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from refsr.core.errors import RefsrError
from refsr.core.imageio import MIN_SIDE
from refsr.data.resize import down_up
from refsr.matching.correspondence import Correspondence
from refsr.matching.search import match
from refsr.matching.stitch import RELU3_STRIDE, SWAP_SCALES, swap


def _as_image(img: Tensor, what: str) -> Tensor:
    """Accept ``3 x H x W`` or ``1 x 3 x H x W`` in [0, 1]; return ``1 x 3 x H x W``."""
    if img.dim() == 3:
        img = img[None]
    if img.dim() != 4 or img.shape[:2] != (1, 3):
        raise ValueError(f"{what}: expected 1 x 3 x H x W, got {tuple(img.shape)}")
    return img


def _check_ref_image(ref: Tensor, i: int) -> None:
    h, w = ref.shape[-2:]
    if h < MIN_SIDE or w < MIN_SIDE:
        raise RefsrError("reference", f"reference {i} is {w}x{h} px, smaller than one 3x3 patch "
                                      f"at relu3_1 ({MIN_SIDE}x{MIN_SIDE} px)")


def ref_down_up(ref: Tensor, scale: int = 4) -> Tensor:
    """``Ref↓↑``: MATLAB bicubic down and up by ``scale`` on the uint8 image (mod-cropped).

    ``ref`` is ``1 x 3 x H x W`` in [0, 1]; returns the same layout, dtype and device.
    """
    ref = _as_image(ref, "reference")
    arr = (ref[0].detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    out = torch.from_numpy(np.ascontiguousarray(down_up(arr, scale))).permute(2, 0, 1)[None]
    return out.to(device=ref.device, dtype=ref.dtype) / 255


def extract_features(vgg, img: Tensor, layers: tuple[str, ...]) -> dict[str, Tensor]:
    """Run ``vgg`` without gradients and check that it provides ``layers``."""
    # Channels-last: faster convolutions, and pixel rows for matching/stitching. A clone gives
    # canonical strides (an N = 1 tensor can pass as channels-last with strides the
    # convolutions do not keep).
    with torch.no_grad():
        feats = vgg(img.clone(memory_format=torch.channels_last))
    missing = [name for name in layers if name not in feats]
    if missing:
        raise RefsrError("vgg", f"the feature extractor lacks {', '.join(missing)}; load it with "
                                f"load_vgg19(layers={layers})")
    return feats


def correspond(lr_up: Tensor, refs: list[Tensor], vgg, max_mb: float = 256,
               refs_down_up: list[Tensor] | None = None, mode: str = "exact",
               approx=None) -> Correspondence:
    """Match φ(LR↑) against φ(Ref↓↑) at relu3_1 for images in [0, 1] (``1 x 3 x H x W``).

    ``refs`` are the original references (any sizes >= ``MIN_SIDE`` = 12 px); their ``Ref↓↑`` is made with
    :func:`ref_down_up` unless given in ``refs_down_up`` (same order, e.g. from a cache).
    ``mode``/``approx``: see :func:`match`.
    """
    lr_up = _as_image(lr_up, "lr_up")
    if min(lr_up.shape[-2:]) < RELU3_STRIDE:
        raise RefsrError("lr", f"LR↑ image {lr_up.shape[-1]}x{lr_up.shape[-2]} px is smaller "
                               f"than one relu3_1 position ({RELU3_STRIDE} px)")
    refs = [_as_image(ref, f"reference {i}") for i, ref in enumerate(refs)]
    if not refs:
        raise RefsrError("reference", "at least one reference is needed")
    for i, ref in enumerate(refs):
        _check_ref_image(ref, i)
    if refs_down_up is None:
        refs_down_up = [ref_down_up(ref) for ref in refs]
    elif len(refs_down_up) != len(refs):
        raise ValueError(f"{len(refs_down_up)} Ref↓↑ images for {len(refs)} references")
    for i, (ref, prepared) in enumerate(zip(refs, refs_down_up, strict=True)):
        if tuple(d // RELU3_STRIDE for d in ref.shape[-2:]) != \
                tuple(d // RELU3_STRIDE for d in prepared.shape[-2:]):
            raise ValueError(f"Ref↓↑ {i} is {tuple(prepared.shape[-2:])}, reference "
                             f"{tuple(ref.shape[-2:])}: their relu3_1 grids differ")
    layer = ("relu3_1",)
    content = extract_features(vgg, lr_up, layer)["relu3_1"]
    cands = [extract_features(vgg, _as_image(r, "Ref↓↑"), layer)["relu3_1"] for r in refs_down_up]
    return match(content, cands, patch=3, max_mb=max_mb, mode=mode, approx=approx)


def transfer(lr_up: Tensor, refs: list[Tensor], vgg, max_mb: float = 256,
             refs_down_up: list[Tensor] | None = None, mode: str = "exact",
             approx=None) -> tuple[Correspondence, dict[str, Tensor]]:
    """:func:`correspond` then :func:`swap` with φ(Ref) at relu1_1, relu2_1, relu3_1."""
    corr = correspond(lr_up, refs, vgg, max_mb=max_mb, refs_down_up=refs_down_up, mode=mode, approx=approx)
    layers = tuple(SWAP_SCALES)
    ref_feats = [extract_features(vgg, _as_image(ref, "reference"), layers) for ref in refs]
    return corr, swap(corr, ref_feats, out_hw=tuple(lr_up.shape[-2:]), max_mb=max_mb)


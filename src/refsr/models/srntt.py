"""SRNTT (Zhang et al., CVPR 2019): content extractor + texture transfer at ×1, ×2, ×4.

The content extractor is :class:`refsr.models.srresnet.ContentExtractor`, the same
module as ``SRResNet.extractor``; :meth:`SRNTT.load_content_extractor` copies it from
a trained SRResNet/SRGAN state dict, as the paper does.

Texture transfer, with swapped VGG feature maps ``M`` from the reference:

* ×1 (LR size):   ψ₁ = ψ + fuse(ψ, M_relu3_1)   (M: 256 channels)
* ×2:             ψ₂ = up(ψ₁) + fuse(up(ψ₁), M_relu2_1)   (128 channels)
* ×4:             ψ₃ = up(ψ₂) + fuse(up(ψ₂), M_relu1_1)   (64 channels)
* output = tail(ψ₃) [+ bicubic ×4 of the LR input]

where ``fuse(x, M)`` is concat → conv → ReLU → residual blocks → conv.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from refsr.core.errors import RefsrError
from refsr.features.vgg import CHANNELS
from refsr.matching.stitch import SWAP_SCALES
from refsr.models.srresnet import (
    ContentExtractor,
    ResidualBlock,
    bicubic_x4,
    conv3x3,
    rgb_tail,
    upsample_x2,
)

#: Swapped-map layers in the order the texture transfer consumes them.
TRANSFER_LAYERS = tuple(SWAP_SCALES)
#: VGG19 channel count of each swapped map.
MAP_CHANNELS = {layer: CHANNELS[layer] for layer in TRANSFER_LAYERS}
#: Resolution of each swapped map relative to the LR input (= its scale relative to relu3_1).
MAP_SCALES = dict(SWAP_SCALES)

EXTRACTOR_PREFIX = "extractor."


def transfer_blocks(n_blocks_transfer: int | Sequence[int]) -> tuple[int, int, int]:
    """Normalise ``n_blocks_transfer`` (one int for all scales, or three) to a triple."""
    if isinstance(n_blocks_transfer, int):
        return (n_blocks_transfer,) * 3
    blocks = tuple(int(b) for b in n_blocks_transfer)
    if len(blocks) != 3:
        raise ValueError(f"n_blocks_transfer needs 3 values (×1, ×2, ×4), got {blocks}")
    return blocks  # type: ignore[return-value]


class TextureFusion(nn.Module):
    """ψ + (concat(ψ, M) → conv → ReLU → residual blocks → conv)."""

    def __init__(self, n_feats: int, map_channels: int, n_blocks: int, res_scale: float = 1.0):
        super().__init__()
        self.fuse = conv3x3(n_feats + map_channels, n_feats)
        self.blocks = nn.Sequential(*(ResidualBlock(n_feats, res_scale) for _ in range(n_blocks)))
        self.conv = conv3x3(n_feats, n_feats)

    def forward(self, x: Tensor, swapped: Tensor) -> Tensor:
        y = F.relu(self.fuse(torch.cat([x, swapped], dim=1)))
        return x + self.conv(self.blocks(y))


class SRNTT(nn.Module):
    """×4 reference-based SR network. ``forward(lr, maps) -> sr``.

    ``maps`` holds the swapped feature maps: ``relu3_1`` (N×256×h×w), ``relu2_1``
    (N×128×2h×2w) and ``relu1_1`` (N×64×4h×4w) for an N×3×h×w LR input in [0, 1].
    With ``residual_over_bicubic`` the output is a residual over the bicubic ×4
    upsampling and the tail starts at zero (untrained model = bicubic).
    """


    def __init__(
        self,
        n_blocks: int = 16,
        n_feats: int = 64,
        n_blocks_transfer: int | Sequence[int] = (16, 8, 4),
        residual_over_bicubic: bool = True,
        res_scale: float = 1.0,
    ):
        super().__init__()
        self.residual_over_bicubic = residual_over_bicubic
        self.extractor = ContentExtractor(n_blocks, n_feats, res_scale)
        blocks = transfer_blocks(n_blocks_transfer)
        self.fusion = nn.ModuleDict(
            {
                layer: TextureFusion(n_feats, MAP_CHANNELS[layer], n, res_scale)
                for layer, n in zip(TRANSFER_LAYERS, blocks, strict=True)
            }
        )
        self.up1 = upsample_x2(n_feats)
        self.up2 = upsample_x2(n_feats)
        self.tail = rgb_tail(n_feats, zero_init=residual_over_bicubic)

    def features(self, lr: Tensor) -> Tensor:
        """Content features ψ (N×n_feats×h×w)."""
        return self.extractor(lr)

    def forward(self, lr: Tensor, maps: Mapping[str, Tensor]) -> Tensor:
        check_maps(lr, maps)
        x = self.fusion["relu3_1"](self.extractor(lr), maps["relu3_1"])
        x = self.fusion["relu2_1"](self.up1(x), maps["relu2_1"])
        x = self.fusion["relu1_1"](self.up2(x), maps["relu1_1"])
        out = self.tail(x)
        if self.residual_over_bicubic:
            out = out + bicubic_x4(lr)
        return out

    def load_content_extractor(
        self, state_dict: Mapping[str, Tensor], source: str = "SRResNet state dict"
    ) -> None:
        """Copy ``extractor.*`` weights from an SRResNet/SRGAN (or SRNTT) state dict.

        Raises :class:`RefsrError` naming ``source`` if a weight is missing or has
        another shape (e.g. a model trained with other ``n_blocks``/``n_feats``).
        """
        own = self.extractor.state_dict()
        theirs = {
            k[len(EXTRACTOR_PREFIX) :]: v
            for k, v in state_dict.items()
            if k.startswith(EXTRACTOR_PREFIX)
        }
        missing = sorted(set(own) - set(theirs))
        extra = sorted(set(theirs) - set(own))
        if missing or extra:
            raise RefsrError(
                source,
                f"content extractor does not match: {len(missing)} missing weight(s) "
                f"(e.g. {missing[:1]}), {len(extra)} unexpected (e.g. {extra[:1]}); "
                "was the SISR model trained with other n_blocks?",
            )
        for k, v in own.items():
            if tuple(theirs[k].shape) != tuple(v.shape):
                raise RefsrError(
                    source,
                    f"content extractor weight {k} has shape {tuple(theirs[k].shape)}, "
                    f"expected {tuple(v.shape)}; was the SISR model trained with other n_feats?",
                )
        self.extractor.load_state_dict(theirs)


def check_maps(lr: Tensor, maps: Mapping[str, Tensor]) -> None:
    """Raise :class:`RefsrError` unless ``maps`` has the three layers at the right shapes."""
    n, _, h, w = lr.shape
    for layer in TRANSFER_LAYERS:
        if layer not in maps:
            raise RefsrError(f"maps[{layer}]", f"missing; SRNTT needs {list(TRANSFER_LAYERS)}")
        s = MAP_SCALES[layer]
        expected = (n, MAP_CHANNELS[layer], s * h, s * w)
        if tuple(maps[layer].shape) != expected:
            raise RefsrError(
                f"maps[{layer}]",
                f"shape {tuple(maps[layer].shape)}, expected {expected} for LR {tuple(lr.shape)}",
            )


__all__ = ["MAP_CHANNELS", "MAP_SCALES", "SRNTT", "TRANSFER_LAYERS", "TextureFusion", "check_maps"]

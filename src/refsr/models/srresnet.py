"""SRResNet (Ledig et al. 2017) without batch normalisation, ×4.

The building blocks here (:class:`ResidualBlock`, :class:`ContentExtractor`,
:func:`upsample_x2`, :func:`bicubic_x4`) are shared with :mod:`refsr.models.srntt`:
SRNTT's content extractor is the same module as ``SRResNet.extractor``, so its
weights can be copied from a trained SRResNet/SRGAN (as in the paper).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

SCALE = 4


def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    """A 3×3 convolution with 'same' padding."""
    return nn.Conv2d(c_in, c_out, 3, 1, 1)


def bicubic_x4(lr: Tensor) -> Tensor:
    """Bicubic ×4 upsampling (``F.interpolate``, ``align_corners=False``)."""
    h, w = lr.shape[-2:]
    return F.interpolate(lr, size=(SCALE * h, SCALE * w), mode="bicubic", align_corners=False)


def upsample_x2(n_feats: int) -> nn.Sequential:
    """conv (n → 4n) → pixel shuffle ×2 → ReLU."""
    return nn.Sequential(conv3x3(n_feats, 4 * n_feats), nn.PixelShuffle(2), nn.ReLU(inplace=True))


def rgb_tail(n_feats: int, zero_init: bool) -> nn.Conv2d:
    """The last conv to RGB; zero-initialised for residual-over-bicubic models (which then
    start as exact bicubic upsampling)."""
    tail = conv3x3(n_feats, 3)
    if zero_init:
        nn.init.zeros_(tail.weight)
        nn.init.zeros_(tail.bias)
    return tail


class ResidualBlock(nn.Module):
    """conv → ReLU → conv, scaled by ``res_scale``, plus the identity (no batch norm)."""

    def __init__(self, n_feats: int, res_scale: float = 1.0):
        super().__init__()
        self.conv1 = conv3x3(n_feats, n_feats)
        self.conv2 = conv3x3(n_feats, n_feats)
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.res_scale * self.conv2(F.relu(self.conv1(x)))


class ResidualTrunk(nn.Module):
    """``n_blocks`` residual blocks → conv, plus a skip from the trunk's input."""

    def __init__(self, n_blocks: int, n_feats: int, res_scale: float = 1.0):
        super().__init__()
        self.blocks = nn.Sequential(*(ResidualBlock(n_feats, res_scale) for _ in range(n_blocks)))
        self.conv = conv3x3(n_feats, n_feats)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(self.blocks(x))


class ContentExtractor(nn.Module):
    """SRResNet's LR-resolution part: conv head (+ReLU) → residual trunk with global skip.

    Maps N×3×h×w images in [0, 1] to N×n_feats×h×w features (SRNTT's ψ).
    """

    def __init__(self, n_blocks: int = 16, n_feats: int = 64, res_scale: float = 1.0):
        super().__init__()
        self.head = conv3x3(3, n_feats)
        self.trunk = ResidualTrunk(n_blocks, n_feats, res_scale)

    def forward(self, lr: Tensor) -> Tensor:
        return self.trunk(F.relu(self.head(lr)))


class SRResNet(nn.Module):
    """×4 SISR network: content extractor → two pixel-shuffle ×2 stages → conv tail.

    With ``residual_over_bicubic`` the network predicts a residual that is added to
    the bicubic upsampling of its input, and the tail starts at zero, so an untrained
    model already returns the bicubic image (this lets tiny CPU budgets learn something
    useful). Outputs are not clamped.
    """


    def __init__(
        self,
        n_blocks: int = 16,
        n_feats: int = 64,
        scale: int = 4,
        residual_over_bicubic: bool = True,
        res_scale: float = 1.0,
    ):
        super().__init__()
        if scale != SCALE:
            raise ValueError(f"SRResNet supports scale {SCALE} only, got {scale}")
        self.scale = scale
        self.residual_over_bicubic = residual_over_bicubic
        self.extractor = ContentExtractor(n_blocks, n_feats, res_scale)
        self.upsample = nn.Sequential(upsample_x2(n_feats), upsample_x2(n_feats))
        self.tail = rgb_tail(n_feats, zero_init=residual_over_bicubic)

    def features(self, lr: Tensor) -> Tensor:
        """The content features (N×n_feats×h×w) that SRNTT's content extractor computes."""
        return self.extractor(lr)

    def forward(self, lr: Tensor) -> Tensor:
        out = self.tail(self.upsample(self.extractor(lr)))
        if self.residual_over_bicubic:
            out = out + bicubic_x4(lr)
        return out


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = [
    "ContentExtractor",
    "ResidualBlock",
    "ResidualTrunk",
    "SRResNet",
    "bicubic_x4",
    "conv3x3",
    "count_parameters",
    "upsample_x2",
]

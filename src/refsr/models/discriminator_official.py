"""The released SRNTT critic (recipe ``official``): ZZUTK/SRNTT, ``SRNTT.discriminator``.

``n_down`` (5) stages of [conv 3x3 stride 1 → BN → LeakyReLU(0.2), conv 3x3 stride 2 → BN →
LeakyReLU(0.2)], widths ``n_feats · 2^i`` (32 → 512), convolutions without bias and with
TensorFlow's ``'SAME'`` padding (for stride 2 on an even size that pads one row and column at
the bottom and right only); then flatten (in TensorFlow's HWC order) → dense ``n_hidden``
(1024) → LeakyReLU(0.2) → dense 1. The logits are the WGAN critic's scores (the released
sigmoid output is unused with WGAN-GP). Its batch norms run in training mode while training, so
each of the released code's three critic calls (real, fake, interpolates) normalises with its
own batch statistics, as here. Initialisation as released: conv weights N(0, 0.02), BN gamma
N(1, 0.02); dense weights truncated N(0, 0.1) (TensorLayer's ``DenseLayer`` default), biases 0.
The dense layer fixes the input size: the critic is built for the training patch size.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from refsr.core.errors import RefsrError
from refsr.models.srntt_official import batch_norm, released_init

#: TensorLayer ``DenseLayer``'s default initialiser: ``truncated_normal(stddev=0.1)``.
DENSE_INIT_STD = 0.1
LEAK = 0.2


def same_padding(size: int, k: int, s: int) -> tuple[int, int]:
    """TensorFlow's ``'SAME'`` padding (before, after) of one axis."""
    total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
    return total // 2, total - total // 2


class SameConv(nn.Conv2d):
    """A bias-free 3x3 convolution with TensorFlow's ``'SAME'`` padding for any stride."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__(c_in, c_out, 3, stride, 0, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        (t, b), (lft, r) = (same_padding(x.shape[-2], 3, self.stride[0]),
                            same_padding(x.shape[-1], 3, self.stride[1]))
        return super().forward(F.pad(x, (lft, r, t, b)))


class OfficialCritic(nn.Module):
    """N x 3 x H x W images in [-1, 1] → N critic scores; built for one input size ``in_hw``."""

    def __init__(self, in_hw: tuple[int, int], n_feats: int = 32, n_down: int = 5, n_hidden: int = 1024):
        super().__init__()
        layers: list[nn.Module] = []
        c_in, (h, w) = 3, in_hw
        for i in range(n_down):
            c = n_feats * 2**i
            layers += [SameConv(c_in, c, 1), batch_norm(c), nn.LeakyReLU(LEAK),
                       SameConv(c, c, 2), batch_norm(c), nn.LeakyReLU(LEAK)]
            c_in, h, w = c, math.ceil(h / 2), math.ceil(w / 2)
        self.features = nn.Sequential(*layers)
        self.in_hw = tuple(in_hw)
        self.fc = nn.Linear(c_in * h * w, n_hidden)
        self.head = nn.Linear(n_hidden, 1)
        released_init(self)
        for lin in (self.fc, self.head):
            nn.init.trunc_normal_(lin.weight, 0.0, DENSE_INIT_STD, -2 * DENSE_INIT_STD, 2 * DENSE_INIT_STD)
            nn.init.zeros_(lin.bias)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != self.in_hw:
            raise RefsrError("critic input", f"size {tuple(x.shape[-2:])}, the critic was built for {self.in_hw} "
                                             "(its dense layer fixes the training patch size)")
        f = self.features(x).permute(0, 2, 3, 1).flatten(1)  # TensorFlow's HWC flatten order
        return self.head(F.leaky_relu(self.fc(f), LEAK)).squeeze(1)


__all__ = ["OfficialCritic", "SameConv", "same_padding"]

"""Image critic for WGAN-GP: strided convolutions + LeakyReLU, no normalisation.

WGAN-GP penalises the gradient norm per sample, which batch normalisation would
couple across the batch, so the critic has no normalisation layers. A global average
pool before the linear head makes it accept any input size ≥ ``min_size``
(``2 ** n_down``; training patches of 64..160 pixels are typical).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from refsr.core.errors import RefsrError


class Discriminator(nn.Module):
    """One unbounded score per image (N×3×H×W → N).

    ``n_down`` stages of [3×3 conv stride 1 → 4×4 conv stride 2], each LeakyReLU(0.2),
    widths ``n_feats · 2^min(i, 3)``; then global average pool → linear → LeakyReLU →
    linear.
    """

    def __init__(self, n_feats: int = 64, n_down: int = 4, n_hidden: int = 100):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, n_feats, 3, 1, 1), nn.LeakyReLU(0.2, True)]
        c = n_feats
        for i in range(n_down):
            c_out = n_feats * 2 ** min(i, 3)
            if i > 0:
                layers += [nn.Conv2d(c, c_out, 3, 1, 1), nn.LeakyReLU(0.2, True)]
            layers += [nn.Conv2d(c_out, c_out, 4, 2, 1), nn.LeakyReLU(0.2, True)]
            c = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(c, n_hidden), nn.LeakyReLU(0.2, True), nn.Linear(n_hidden, 1)
        )
        self.min_size = 2**n_down

    def forward(self, x: Tensor) -> Tensor:
        if min(x.shape[-2:]) < self.min_size:
            raise RefsrError(
                "discriminator input",
                f"size {tuple(x.shape[-2:])} is smaller than {self.min_size} pixels",
            )
        f = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.head(f).squeeze(1)


__all__ = ["Discriminator"]

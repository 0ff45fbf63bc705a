"""VGG similarity: the quantity SRNTT's matching maximises, averaged over the image."""

from __future__ import annotations

import numpy as np

from refsr.core.imageio import to_tensor
from refsr.data.resize import down_up, upscale
from refsr.features.vgg import load_vgg19
from refsr.matching import correspond


class VGGSimilarity:
    """Mean best-match cosine at relu3_1 between LR-up and Ref-down-up (SRNTT's matching)."""

    def __init__(self, weights: str | None = None, max_mb: int = 256, scale: int = 4,
                 resize: str = "matlab"):
        self.vgg = load_vgg19(layers=("relu3_1",), weights=weights)
        self.max_mb, self.scale, self.resize = max_mb, scale, resize

    @property
    def weights_source(self) -> str:
        return self.vgg.weights_source

    def score(self, lr: np.ndarray, ref: np.ndarray) -> float:
        lr_up = to_tensor(upscale(lr, self.scale, self.resize))
        ref_du = to_tensor(down_up(ref, self.scale, self.resize))
        corr = correspond(lr_up, [to_tensor(ref)], self.vgg, max_mb=self.max_mb, refs_down_up=[ref_du])
        return float(corr.cosine.mean())

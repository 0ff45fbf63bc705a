"""The released SRNTT losses (recipe ``official``): ZZUTK/SRNTT, ``SRNTT.train``.

Images here are in [-1, 1] (the released graph's range); VGG features are those of the
official recipe's VGG19 (:func:`refsr.features.matconvnet.load_official_vgg19`: MatConvNet's
on RGB [0, 255] minus the mean pixel).

* Reconstruction: mean absolute error on [-1, 1] images (``is_L1_loss=True``).
* Perceptual: mean squared error of the features at one layer (``relu5_1`` as released;
  ``loss.perceptual_layer``), TensorLayer's ``mean_squared_error(..., is_mean=True)``.
* Texture: for relu3_1, relu2_1, relu1_1, the mean over the Gram matrix entries of the
  squared difference between the Gram matrices (``G = Fᵀ F``, unnormalised) of the swapped map
  M and of the SR features, divided by 4 and by (H·W·C)² of that layer; the three terms summed
  and divided by 3. Unweighted by default (``use_weight_map=False``); with
  ``official.texture_weight_map`` both are multiplied by ``sigmoid(-20·w + 0.65)``, ``w`` the
  best-match cosine on the relu3_1 grid resized bicubically to each layer (the released
  ``a = -20``, ``b = 0.65``).
* Adversarial (WGAN-GP, ``is_WGAN_GP=True``): generator ``-mean D(SR)``; critic
  ``mean D(SR) - mean D(HR) + λ·mean((‖∇D(x̂)‖ - 1)²)`` on ``x̂ = α·HR + (1 - α)·SR``, α uniform per
  sample, the norm taken over the channels at each pixel (``reduction_indices=-1`` of the
  NHWC gradient), λ = ``loss.gp`` (10).

Deviations: the gradient norm is floored at 1e-6 before its square root, so a pixel whose
gradient is exactly zero gives a finite penalty gradient where TensorFlow would give NaN; the
weight map is resized with PyTorch's bicubic (half-pixel centres) where TensorFlow 1's
``resize_bicubic`` used corner-aligned sampling without half-pixel centres.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from refsr.core.errors import RefsrError

#: The texture loss's layers, in the released order.
TEXTURE_LAYERS = ("relu3_1", "relu2_1", "relu1_1")
#: The released weight-map sigmoid ``sigmoid(a·w + b)``.
WEIGHT_A, WEIGHT_B = -20.0, 0.65
#: Floor of the per-pixel gradient norm of the penalty (see the module docstring).
MIN_SLOPE = 1e-6


def reconstruction(sr: Tensor, hr: Tensor) -> Tensor:
    """Mean absolute error of images in [-1, 1]."""
    return (sr - hr).abs().mean()


def perceptual(sr_feats: Mapping[str, Tensor], hr_feats: Mapping[str, Tensor], layer: str) -> Tensor:
    """Mean squared error of the VGG features at ``layer`` (the HR side is a constant)."""
    for feats, what in ((sr_feats, "SR"), (hr_feats, "HR")):
        if layer not in feats:
            raise RefsrError(f"VGG features[{layer}]", f"not computed for the {what} image (it has {sorted(feats)})")
    return F.mse_loss(sr_feats[layer], hr_feats[layer].detach())


def gram(x: Tensor) -> Tensor:
    """``N x C x H x W`` → ``N x C x C``: ``G = Fᵀ F`` over the H·W positions (the released
    ``tf_gram_matrix``, unnormalised)."""
    n, c, h, w = x.shape
    f = x.reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2))


def weight_map(cosine: Tensor, size: tuple[int, int]) -> Tensor:
    """``sigmoid(-20·w + 0.65)`` of the best-match cosine ``w`` (``N x 1 x h x w``) at ``size``."""
    w = cosine if tuple(cosine.shape[-2:]) == tuple(size) else \
        F.interpolate(cosine, size=size, mode="bicubic", align_corners=False)
    return torch.sigmoid(WEIGHT_A * w + WEIGHT_B)


def texture(sr_feats: Mapping[str, Tensor], maps: Mapping[str, Tensor], cosine: Tensor | None = None) -> Tensor:
    """The released texture loss (module docstring); ``cosine`` (``N x 1 x h x w`` on the
    relu3_1 grid) switches on the weighted variant. ``maps`` are constants."""
    total = None
    for layer in TEXTURE_LAYERS:
        f = sr_feats[layer]
        m = maps.get(layer)
        if m is None or m.shape != f.shape:
            raise RefsrError(f"maps[{layer}]", f"shape {None if m is None else tuple(m.shape)} does not match "
                                               f"the SR features {tuple(f.shape)}")
        m = m.detach()
        if cosine is not None:
            w = weight_map(cosine.detach().to(f.dtype), tuple(f.shape[-2:]))
            f, m = f * w, m * w
        _, c, h, w_ = f.shape
        norm = float(h * w_ * c)  # (H·W·C)² applied as the square of the scaled difference
        term = ((gram(m) - gram(f)) / norm).pow(2).mean() / 4
        total = term if total is None else total + term
    return total / len(TEXTURE_LAYERS)


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor,
                     generator: torch.Generator | None = None) -> Tensor:
    """``mean((‖∇D(x̂)‖_c - 1)²)`` with the norm over channels at every pixel (unweighted)."""
    real, fake = real.detach(), fake.detach()
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype, generator=generator)
    x = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    slopes = grad.pow(2).sum(dim=1).clamp_min(MIN_SLOPE**2).sqrt()
    return (slopes - 1).pow(2).mean()


def critic_loss(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, gp_weight: float,
                generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """The released WGAN-GP critic loss: ``{"wgan", "gp", "total"}``."""
    wgan = critic(fake.detach()).mean() - critic(real).mean()
    gp = gradient_penalty(critic, real, fake, generator=generator)
    return {"wgan": wgan, "gp": gp, "total": wgan + gp_weight * gp}


def adversarial(critic: Callable[[Tensor], Tensor], fake: Tensor) -> Tensor:
    """The released generator term ``-mean D(SR)``."""
    return -critic(fake).mean()


__all__ = [
    "TEXTURE_LAYERS",
    "adversarial",
    "critic_loss",
    "gradient_penalty",
    "gram",
    "perceptual",
    "reconstruction",
    "texture",
    "weight_map",
]

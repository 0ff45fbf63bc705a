"""SRNTT's training losses: reconstruction, perceptual, texture and WGAN-GP adversarial.

The weights come from the config's ``loss`` section (the schema's defaults follow the paper:
reconstruction 1, perceptual 1e-4, texture 1e-4, adversarial 1e-6, gradient penalty λ = 10).
Which terms a model uses is its registry entry's ``losses`` (:mod:`refsr.models.registry`).

Losses that need VGG take a feature extractor as an argument: any callable mapping an
N×3×H×W RGB batch in [0, 1] to ``dict[layer_name, Tensor]`` (e.g.
``refsr.features.vgg.load_vgg19(...)``). Nothing here loads weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from refsr.core.errors import RefsrError
from refsr.models import registry

FeatureExtractor = Callable[[Tensor], Mapping[str, Tensor]]

TEXTURE_LAYERS = ("relu1_1", "relu2_1", "relu3_1")
TERMS = registry.LOSS_TERMS


# --------------------------------------------------------------------------- terms


def reconstruction_loss(sr: Tensor, hr: Tensor) -> Tensor:
    """Mean absolute error (L1)."""
    return F.l1_loss(sr, hr)


class PerceptualLoss:
    """MSE between VGG features of ``sr`` and ``hr`` at one layer (default relu5_1).

    ``vgg`` must return ``layer`` among its outputs. The ``hr`` features are computed
    without gradient; pass ``sr_feats`` to reuse features already computed for ``sr``.
    """

    def __init__(self, vgg: FeatureExtractor, layer: str = "relu5_1"):
        self.vgg = vgg
        self.layer = layer

    def __call__(
        self, sr: Tensor, hr: Tensor, sr_feats: Mapping[str, Tensor] | None = None
    ) -> Tensor:
        feats = self.vgg(sr) if sr_feats is None else sr_feats
        with torch.no_grad():
            target = self.vgg(hr)
        return F.mse_loss(_layer(feats, self.layer), _layer(target, self.layer).detach())


def gram(x: Tensor) -> Tensor:
    """Normalised Gram matrix: N×C×H×W → N×C×C, ``G[c, d] = Σ_p x[c,p] x[d,p] / (C·H·W)``."""
    n, c, h, w = x.shape
    f = x.reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def texture_loss(
    sr_feats: Mapping[str, Tensor],
    maps: Mapping[str, Tensor],
    s_star: Tensor,
    layers: Sequence[str] = TEXTURE_LAYERS,
) -> Tensor:
    """SRNTT's texture loss: S*-weighted Gram matrices of ψ_SR and the swapped maps M.

    For each layer l, ``S*_l`` is the relu3_1 best-match score map ``s_star``
    (N×1×h×w) resized bilinearly to that layer's resolution, and the term is

        ‖gram(ψ_l ⊙ S*_l) − gram(M_l ⊙ S*_l)‖²_F / 4
          = ‖G(ψ_l ⊙ S*_l) − G(M_l ⊙ S*_l)‖²_F / (4 C_l² (H_l W_l)²)

    with ``gram`` the normalised and ``G`` the plain Gram matrix (Gatys et al.'s
    normalisation). Terms are averaged over the batch and summed over layers.
    Exactly zero when ψ = M. ``maps`` and ``s_star`` are treated as constants.

    ``s_star`` is used as given, and the term grows with its 4th power. A raw
    inner-product score (content patch not normalised) at relu3_1 is in the hundreds,
    so pass a map scaled to about [0, 1] (cosine similarity, or S* divided by its
    per-image maximum) to keep the paper's weight of 1e-4 meaningful.
    """
    if s_star.dim() == 3:
        s_star = s_star.unsqueeze(1)
    s_star = s_star.detach().to(dtype=next(iter(sr_feats.values())).dtype)
    total = s_star.new_zeros(())
    for layer in layers:
        psi = _layer(sr_feats, layer)
        m = maps[layer].detach() if layer in maps else None
        if m is None or m.shape != psi.shape:
            got = None if m is None else tuple(m.shape)
            raise RefsrError(
                f"maps[{layer}]", f"shape {got} does not match the SR features {tuple(psi.shape)}"
            )
        w = s_star
        if w.shape[-2:] != psi.shape[-2:]:
            w = F.interpolate(w, size=psi.shape[-2:], mode="bilinear", align_corners=False)
        diff = gram(psi * w) - gram(m * w)
        total = total + diff.pow(2).sum(dim=(1, 2)).mean() / 4
    return total


# --------------------------------------------------------------------------- WGAN-GP


def gradient_penalty(
    disc: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    generator: torch.Generator | None = None,
) -> Tensor:
    """WGAN-GP penalty ``E[(‖∇_x D(x)‖₂ − 1)²]`` on random interpolates of real and fake.

    Unweighted: the caller multiplies by λ (``LossConfig.gp``). The graph is kept
    (``create_graph=True``) so the penalty trains the critic.
    """
    real, fake = real.detach(), fake.detach()
    alpha = torch.rand(
        real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype, generator=generator
    )
    x = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(disc(x).sum(), x, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


def d_loss_wgan(disc: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """Critic loss ``E[D(fake)] − E[D(real)]`` (fake is detached); minimise it."""
    return disc(fake.detach()).mean() - disc(real).mean()


def g_loss_wgan(disc: Callable[[Tensor], Tensor], fake: Tensor) -> Tensor:
    """Generator adversarial loss ``−E[D(fake)]``; minimise it."""
    return -disc(fake).mean()


# --------------------------------------------------------------------------- combined


@dataclass(frozen=True)
class LossConfig:
    """Loss weights (a weight of 0 switches a term off) and the perceptual layer: the config's
    ``loss`` section (the schema documents each key and its default)."""

    reconstruction: float
    perceptual: float
    texture: float
    adversarial: float
    gp: float
    perceptual_layer: str
    #: TTSR's transferal perceptual loss (the ``ttsr.loss`` section only; :mod:`refsr.training.ttsr`).
    transferal: float = 0.0

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any], model: str | None = None,
                  where: str = "loss config", recipe: str | None = None) -> LossConfig:
        """Build from a validated ``loss`` section.

        With ``model`` given, terms that model does not use (its registry entry's ``losses``)
        are set to 0, e.g. ``srntt_l2`` keeps only reconstruction, and may be missing from
        ``cfg`` (as in :func:`refsr.training.config.loss_for`); without, every key is needed.
        """
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(cfg) - set(names))
        if unknown:
            raise RefsrError(where, f"unknown key(s) {unknown}")
        cfg = dict(cfg)
        if model is not None:  # terms the model does not use may be left out
            used = registry.get(model, where=where, recipe=recipe).losses
            cfg.update({t: 0.0 for t in TERMS if t not in used})
            cfg.setdefault("gp", 0.0)
            cfg.setdefault("perceptual_layer", "")
        missing = [f.name for f in fields(cls) if f.name not in cfg and f.name != "transferal"]
        if missing:
            raise RefsrError(where, f"missing key(s) {missing}")
        return cls(**{k: (cfg[k] if k == "perceptual_layer" else float(cfg[k])) for k in names if k in cfg})

    def active(self) -> tuple[str, ...]:
        """Terms with a non-zero weight, in :data:`TERMS` order."""
        return tuple(t for t in TERMS if getattr(self, t, 0.0) > 0)

    def vgg_layers(self) -> tuple[str, ...]:
        """VGG layers the active terms need (empty if no VGG is needed)."""
        layers: list[str] = []
        if self.texture > 0:
            layers += TEXTURE_LAYERS
        if self.perceptual > 0 and self.perceptual_layer not in layers:
            layers.append(self.perceptual_layer)
        return tuple(layers)


class GeneratorLoss:
    """Weighted sum of the active generator terms; returns every term for logging.

    ``loss(sr, hr, maps=None, s_star=None)`` returns a dict with the *unweighted*
    value of each active term (keys from :data:`TERMS`) and ``"total"``, the weighted
    sum to back-propagate. ``vgg`` is needed for perceptual/texture terms (it must
    return :meth:`LossConfig.vgg_layers`), ``disc`` for the adversarial term, and
    ``maps``/``s_star`` for the texture term.
    """

    def __init__(
        self,
        cfg: LossConfig,
        vgg: FeatureExtractor | None = None,
        disc: Callable[[Tensor], Tensor] | None = None,
    ):
        if cfg.vgg_layers() and vgg is None:
            raise ValueError(f"loss terms {cfg.active()} need a VGG feature extractor")
        if cfg.adversarial > 0 and disc is None:
            raise ValueError("the adversarial term needs a discriminator")
        self.cfg = cfg
        self.vgg = vgg
        self.disc = disc
        self.perceptual = PerceptualLoss(vgg, cfg.perceptual_layer) if vgg is not None else None

    def __call__(
        self,
        sr: Tensor,
        hr: Tensor,
        maps: Mapping[str, Tensor] | None = None,
        s_star: Tensor | None = None,
    ) -> dict[str, Tensor]:
        cfg = self.cfg
        terms: dict[str, Tensor] = {}
        if cfg.reconstruction > 0:
            terms["reconstruction"] = reconstruction_loss(sr, hr)
        sr_feats = self.vgg(sr) if cfg.vgg_layers() else None
        if cfg.perceptual > 0:
            terms["perceptual"] = self.perceptual(sr, hr, sr_feats=sr_feats)
        if cfg.texture > 0:
            if maps is None or s_star is None:
                raise ValueError("the texture term needs the swapped maps and S*")
            terms["texture"] = texture_loss(sr_feats, maps, s_star)
        if cfg.adversarial > 0:
            terms["adversarial"] = g_loss_wgan(self.disc, sr)
        total = sum((getattr(cfg, k) * v for k, v in terms.items()), sr.new_zeros(()))
        terms["total"] = total
        return terms


def discriminator_loss(
    disc: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    gp_weight: float = 10.0,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """WGAN-GP critic step: ``{"wgan": E[D(fake)]−E[D(real)], "gp": penalty, "total"}``.

    ``total = wgan + gp_weight · gp``; ``-wgan`` estimates the Wasserstein distance.
    """
    wgan = d_loss_wgan(disc, real, fake)
    gp = gradient_penalty(disc, real, fake, generator=generator)
    return {"wgan": wgan, "gp": gp, "total": wgan + gp_weight * gp}


def _layer(feats: Mapping[str, Tensor], layer: str) -> Tensor:
    if layer not in feats:
        raise RefsrError(
            f"VGG features[{layer}]",
            f"not returned by the feature extractor (it returns {sorted(feats)})",
        )
    return feats[layer]


__all__ = [
    "TERMS",
    "TEXTURE_LAYERS",
    "GeneratorLoss",
    "LossConfig",
    "PerceptualLoss",
    "d_loss_wgan",
    "discriminator_loss",
    "g_loss_wgan",
    "gradient_penalty",
    "gram",
    "reconstruction_loss",
    "texture_loss",
]

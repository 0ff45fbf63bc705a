"""TTSR's released training loop (researchmm/TTSR ``trainer.py``, ``loss/loss.py``, ``option.py``,
``train.sh``), one iteration per batch.

* Inputs in [-1, 1]: LR, LR↑ (×4 bicubic), HR, Ref and Ref↓↑ (×4 down then up; the reference
  mod-cropped to a multiple of 4), resized with the config's ``resize`` (the released loader
  uses PIL's bicubic: ``resize: pil`` gives it).
* Generator: Adam (0.9, 0.999, ε 1e-8), two parameter groups as released: MainNet at ``train.lr``
  (1e-4) and the LTE's trainable weights at ``ttsr.lr_lte`` (1e-5); the loss is
  ``rec·L1 + per·MSE(VGG(SR), VGG(HR)) + tpl·transferal + adv·(-D(SR))``.
* ``ttsr_rec``: the reconstruction term only, from the first iteration (``--num_init_epochs 0``).
  ``ttsr``: the first ``ttsr.init_iterations`` iterations are reconstruction-only (the released
  init epochs; 2 epochs of CUFED = 2 x 1319 batches), then all terms.
* Transferal perceptual loss (released default ``tpl_use_S False``, ``tpl_type l2``): the mean
  over the three levels of ``MSE(LTE_copy(SR)_l, T_l)``, the LTE evaluated with detached weights
  (:meth:`refsr.models.ttsr.TTSR.lte_frozen`) and ``T`` with gradients into the LTE.
* Perceptual loss: MSE of torchvision VGG19 features at ``ttsr.loss.perceptual_layer`` of
  ``(x + 1) / 2`` (released: ``features[0:30]``, i.e. relu5_1 -- not relu5_4).
* Adversarial (WGAN-GP, ``GAN_k`` = ``ttsr.critic_steps`` = 2): before each generator step,
  ``k`` critic steps on ``mean(D(fake) - D(real)) + gp·(‖∇D(x̂)‖₂ - 1)²`` with the norm over
  the whole flattened sample, critic Adam (0, 0.9) at ``ttsr.lr_critic``; the generator term
  is ``-mean(D(SR))``. Critic: :class:`refsr.models.ttsr.TTSRCritic`.

Differences from the released loop, each a decision: no random flips / rotations (the
pipeline's training pairs are used as built, like every other model here); batches are a
seeded function of the iteration (:func:`refsr.training.data.batch_indices`) and the gradient
penalty's ε is seeded by (seed, iteration), so a resumed run equals an uninterrupted one; the
released StepLR (``--decay 999999``) never fires within a run and is left out; the search runs
through :mod:`refsr.matching.relevance` (same indices and scores, bounded memory).

Recipe ``refsr`` (:data:`refsr.models.registry._TTSR_REFSR`) runs this loop with three changes:
the network is :class:`refsr.models.ttsr.TTSRResidual` (a residual over bicubic); ``ttsr``
starts from the trained ``ttsr_rec`` checkpoint (every weight, the LTE included: the registry's
``parent`` / ``init``), so it has no reconstruction-only phase of its own; and the learning
rates fall from ``ttsr.refsr.lr`` to ``ttsr.refsr.lr_end`` over the run (half a cosine, a
function of the iteration, so a resumed run is unchanged), the LTE's ``ttsr.lr_lte`` scaled by
the same factor.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from refsr.core.device import torch_device
from refsr.core.imageio import to_tensor
from refsr.data.resize import down_up, upscale
from refsr.features.vgg import load_vgg19
from refsr.models.checkpoint import build_model
from refsr.models.ttsr import TTSRCritic
from refsr.training.config import TrainConfig
from refsr.training.data import TrainingSet, batch_indices
from refsr.training.losses import LossConfig
from refsr.training.parallel import DistContext
from refsr.training.trainer import Trainer, _initialise, _seeded

log = logging.getLogger(__name__)

#: ``option.py``'s optimiser defaults (generator) and ``loss/loss.py``'s critic optimiser.
BETAS, CRITIC_BETAS, ADAM_EPS = (0.9, 0.999), (0.0, 0.9), 1e-8


def ttsr_inputs(lr: np.ndarray, ref: np.ndarray, scale: int, resize: str) -> dict[str, Tensor]:
    """TTSR's inputs of one pair (``1 x 3 x H x W`` in [-1, 1]) from LR and reference (uint8
    RGB): LR, LR↑, Ref mod-cropped to ``scale`` and its ``scale`` down-up."""
    ref_du = down_up(ref, scale, resize)
    ref = ref[: ref_du.shape[0], : ref_du.shape[1]]
    images = {"lr": lr, "lrsr": upscale(lr, scale, resize), "ref": ref, "refsr": ref_du}
    return {k: to_tensor(v) * 2 - 1 for k, v in images.items()}


def _uint8(t: Tensor) -> np.ndarray:
    """A ``3 x H x W`` tensor read from an 8-bit image back to its ``H x W x 3`` uint8 array."""
    return (t.permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def transferal_loss(sr_levels, textures) -> Tensor:
    """Released ``TPerceptualLoss(use_S=False, type='l2')``: mean over levels of the MSE."""
    return sum(F.mse_loss(s, t) for s, t in zip(sr_levels, textures, strict=True)) / len(textures)


def critic_loss(disc, real: Tensor, fake: Tensor, gp: float, generator: torch.Generator) -> dict:
    """WGAN-GP as released: ``mean(D(fake) - D(real)) + gp·mean((‖∇D(x̂)‖₂ - 1)²)``, the norm over
    each flattened sample, ``x̂ = (1 - ε) fake + ε real`` with one ε per sample."""
    fake = fake.detach()
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=generator, device=real.device).expand_as(real)
    hat = (fake * (1 - eps) + real * eps).requires_grad_(True)
    grads = torch.autograd.grad(disc(hat).sum(), hat, create_graph=True)[0]
    penalty = (grads.flatten(1).norm(2, dim=1) - 1).pow(2).mean()
    wgan = (disc(fake) - disc(real)).mean()
    return {"wgan": wgan, "gp": penalty, "total": wgan + gp * penalty}


class TTSRTrainer(Trainer):
    """:class:`refsr.training.trainer.Trainer`'s interface with TTSR's released losses and schedule."""

    def __init__(self, cfg: TrainConfig, data: TrainingSet, state_path: str | os.PathLike,
                 init_ckpt: str | None = None, vgg_weights: str | None = None,
                 dist: DistContext | None = None):
        self.cfg, self.data, self.state_path, self.dist = cfg, data, Path(state_path), dist
        self.init_ckpt = init_ckpt  # part of the state's fingerprint (trainer.job_digests)
        self.device = torch_device(cfg.device, "config key device") if dist is None else dist.device_for(cfg.device)
        self.refsr = True
        self.loss_cfg = LossConfig.from_dict(cfg.loss, model=cfg.model, where="ttsr.loss", recipe=cfg.recipe)
        with _seeded(cfg.seed):
            self.model = build_model(cfg.model, cfg.arch, where="ttsr.arch", recipe=cfg.recipe)
        lte_source = self.model.LTE.load_imagenet(vgg_weights)
        _initialise(self.model, cfg.model, init_ckpt, cfg.recipe)  # recipe refsr's ttsr: from ttsr_rec
        self.model = self.model.to(self.device)
        self.model.max_mb = cfg.max_mb
        self.provenance = {"lte_init": lte_source}
        self.init_iterations = int(cfg.options.get("init_iterations", 0))
        self.resize = str(cfg.options.get("resize", "matlab"))
        self.vgg = None
        if self.loss_cfg.perceptual > 0:
            self.vgg = load_vgg19(layers=(self.loss_cfg.perceptual_layer,), weights=vgg_weights,
                                  device=self.device)
        lte = [p for p in self.model.LTE.parameters() if p.requires_grad]
        #: the main network's rate: train.lr (official), or ttsr.refsr.lr falling to lr_end (refsr)
        self.lr_start = float(cfg.options.get("lr", cfg.lr))
        self.lr_end = float(cfg.options.get("lr_end", self.lr_start))
        self.opt = torch.optim.Adam([{"params": list(self.model.MainNet.parameters()), "lr": self.lr_start},
                                     {"params": lte, "lr": float(cfg.options["lr_lte"])}],
                                    betas=BETAS, eps=ADAM_EPS)
        self.base_lrs = [g["lr"] for g in self.opt.param_groups]
        self.disc = self.disc_opt = None
        self.critic_steps = int(cfg.options.get("critic_steps", 0))
        if self.loss_cfg.adversarial > 0:
            with _seeded(cfg.seed + 1):
                self.disc = TTSRCritic(tuple(data[0].hr.shape[-2:])).to(self.device)
            self.disc_opt = torch.optim.Adam(self.disc.parameters(), lr=float(cfg.options["lr_critic"]),
                                             betas=CRITIC_BETAS, eps=ADAM_EPS)
        self._inputs: dict[int, dict[str, Tensor]] = {}
        self.iteration = 0
        self.rows: list[dict] = []
        self._resume()

    def _pair(self, i: int) -> dict[str, Tensor]:
        if i not in self._inputs:
            sample = self.data[i]
            self._inputs[i] = ttsr_inputs(_uint8(sample.lr), _uint8(sample.ref), self.data.scale, self.resize)
            self._inputs[i]["hr"] = sample.hr[None] * 2 - 1
        return self._inputs[i]

    def _ttsr_batch(self, it: int) -> dict[str, Tensor]:
        idx = batch_indices(len(self.data), self.cfg.batch_size, self.cfg.seed, it)
        if self.dist is not None:
            idx = self.dist.shard(idx)
        pairs = [self._pair(i) for i in idx]
        return {k: torch.cat([p[k] for p in pairs]).to(self.device) for k in pairs[0]}

    def _critic_steps(self, hr: Tensor, sr: Tensor, it: int) -> dict:
        row = {}
        for k in range(self.critic_steps):
            gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed * 7919 + it * 8 + k)
            terms = critic_loss(self.disc, hr, sr, self.loss_cfg.gp, gen)
            self.disc_opt.zero_grad(set_to_none=True)
            terms["total"].backward()
            self._average_gradients(self.disc)
            self.disc_opt.step()
            row = {"d_wgan": terms["wgan"].item(), "d_gp": terms["gp"].item()}
        return row

    def lr_at(self, it: int) -> float:
        """The main network's learning rate at iteration ``it``: half a cosine from ``lr_start``
        to ``lr_end`` over ``cfg.iterations`` (constant when they are equal, as released)."""
        if self.lr_end == self.lr_start:
            return self.lr_start
        t = min(it, max(self.cfg.iterations - 1, 1)) / max(self.cfg.iterations - 1, 1)
        return self.lr_end + 0.5 * (self.lr_start - self.lr_end) * (1.0 + math.cos(math.pi * t))

    def step(self, it: int) -> dict:
        lr = self.lr_at(it)
        for group, base in zip(self.opt.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * lr / self.lr_start
        b = self._ttsr_batch(it)
        sr, _S, t3, t2, t1 = self.model(b["lr"], b["lrsr"], b["ref"], b["refsr"])
        cfg = self.loss_cfg
        terms = {"reconstruction": F.l1_loss(sr, b["hr"])}
        row: dict = {"lr": lr}
        if it >= self.init_iterations:
            if cfg.perceptual > 0:
                sr_feats = self.vgg((sr + 1) / 2)[cfg.perceptual_layer]
                with torch.no_grad():
                    hr_feats = self.vgg((b["hr"] + 1) / 2)[cfg.perceptual_layer]
                terms["perceptual"] = F.mse_loss(sr_feats, hr_feats)
            if cfg.transferal > 0:
                sr_lv1, sr_lv2, sr_lv3 = self.model.lte_frozen(sr)
                terms["transferal"] = transferal_loss((sr_lv3, sr_lv2, sr_lv1), (t3, t2, t1))
            if cfg.adversarial > 0:
                row.update(self._critic_steps(b["hr"], sr, it))
                terms["adversarial"] = -self.disc(sr).mean()
        total = sum(getattr(cfg, k) * v for k, v in terms.items())
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self._average_gradients(self.model)
        self.opt.step()
        row.update({k: v.item() for k, v in terms.items()})
        row["total"] = float(total.item())
        with torch.no_grad():
            mse = F.mse_loss(((sr + 1) / 2).clamp(0, 1), (b["hr"] + 1) / 2).item()
        row["train_psnr"] = -10.0 * float(np.log10(max(mse, 1e-12)))
        return row if self.dist is None else self.dist.mean_of(row)


__all__ = ["TTSRTrainer", "critic_loss", "transferal_loss", "ttsr_inputs"]

"""The released SRNTT training loop (recipe ``official``): ZZUTK/SRNTT, ``SRNTT.train``.

One iteration is one batch of the released loop:

* ``srntt_l2`` (the released reconstruction-only epochs, saved as ``srntt_init.npz``): a step on
  the reconstruction loss with the swapped maps of the reference, then the same step with the
  HR image's own VGG maps ("train with truth"); Adam (β1 0.9), constant learning rate.
* ``srntt`` (the epochs with all losses, from ``srntt_l2``): two critic steps, a joint step
  (generator on reconstruction + perceptual + texture + adversarial, and the critic, from the
  same forward pass) with the reference's maps, then the joint step again with the HR image's
  own maps. Generator and critic: Adam (β1 0.9) with a staircase learning rate
  ``lr · 0.1^floor(step / max(iterations/2, 1))`` where ``step`` is the released
  ``global_step``, which every optimiser step increments, the critic's included (six per
  batch), so the rate drops x0.1 every 1/12 of the run (``official.lr_decay: released``);
  ``batches`` counts batches instead, one x0.1 drop at half the run.
* Only the texture transfer trains (``var_g``); the content extractor is frozen
  (:meth:`refsr.models.srntt_official.SRNTTOfficial.freeze_content_extractor`).
* ``srresnet``, ``srgan``: the released code does not train its content extractor (it ships
  ``upscale.npz``). The official SRResNet is trained on the reconstruction loss with the same
  optimiser, and SRGAN (not in the released code) with the critic schedule above without the
  truth step; both are this project's additions, named so in the docs (docs/methods/srntt.md).

Differences from the released loop: the two critic steps of a batch and its joint step use one
generator pass (the released code recomputes the same output three times, moving the
generator's batch-norm averages three times instead of once); batches are a seeded function
of the iteration (:func:`refsr.training.data.batch_indices`) instead of a shuffle per epoch;
PyTorch's Adam puts ε after the bias correction (TensorFlow's before), a difference of order ε.
"""

from __future__ import annotations

import logging
import os

import torch
import torch.nn.functional as F

from refsr.core.device import torch_device
from refsr.features.matconvnet import load_official_vgg19
from refsr.matching import SWAP_SCALES
from refsr.models import registry
from refsr.models.checkpoint import build_model
from refsr.models.discriminator_official import OfficialCritic
from refsr.training import official_losses as L
from refsr.training.config import TrainConfig
from refsr.training.data import TrainingSet
from refsr.training.losses import LossConfig
from refsr.training.parallel import DistContext
from refsr.training.trainer import Trainer, _initialise, _seeded, swapped_maps

log = logging.getLogger(__name__)

#: Adam as released: ``tf.train.AdamOptimizer(learning_rate, beta1=0.9)`` (β2, ε: TF's defaults).
BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
CRITIC_STEPS = 2
DECAY_RATE = 0.1
LR_DECAY_MODES = ("released", "batches")


class OfficialTrainer(Trainer):
    """:class:`refsr.training.trainer.Trainer`'s interface with the released schedule and losses."""

    def __init__(self, cfg: TrainConfig, data: TrainingSet, state_path: str | os.PathLike,
                 init_ckpt: str | None = None, vgg_weights: str | None = None,
                 dist: DistContext | None = None):
        from pathlib import Path

        self.cfg, self.data, self.state_path, self.dist = cfg, data, Path(state_path), dist
        self.init_ckpt = init_ckpt  # part of the state's fingerprint (trainer.job_digests)
        self.device = torch_device(cfg.device, "config key device") if dist is None else dist.device_for(cfg.device)
        spec = registry.get(cfg.model, recipe=cfg.recipe)
        self.refsr = spec.uses_reference
        self.loss_cfg = LossConfig.from_dict(cfg.loss, model=cfg.model, where="loss", recipe=cfg.recipe)
        with _seeded(cfg.seed):
            self.model = build_model(cfg.model, cfg.arch, where="arch", recipe=cfg.recipe).to(self.device)
        _initialise(self.model, cfg.model, init_ckpt, cfg.recipe)
        if self.refsr:
            self.model.freeze_content_extractor()
            params = self.model.transfer_parameters()
        else:
            params = list(self.model.parameters())
        self.weighted = bool(cfg.options.get("texture_weight_map", False))
        self.decay = cfg.options.get("lr_decay", "released")
        layers = set(SWAP_SCALES) if self.refsr else set()
        if self.loss_cfg.texture > 0:
            layers |= set(L.TEXTURE_LAYERS)
        if self.loss_cfg.perceptual > 0:
            layers.add(self.loss_cfg.perceptual_layer)
        self.vgg = None
        if layers:
            self.vgg = load_official_vgg19(tuple(sorted(layers)), mat=cfg.options.get("vgg19_mat"),
                                           weights=vgg_weights, device=self.device)
        self.opt = torch.optim.Adam(params, lr=cfg.lr, betas=BETAS, eps=ADAM_EPS)
        self.disc = self.disc_opt = None
        if self.loss_cfg.adversarial > 0:
            hr_hw = tuple(data[0].hr.shape[-2:])
            with _seeded(cfg.seed + 1):
                self.disc = OfficialCritic(hr_hw, **cfg.disc).to(self.device)
            self.disc_opt = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr, betas=BETAS, eps=ADAM_EPS)
        self.iteration = 0
        self.rows: list[dict] = []
        self._resume()

    # ------------------------------------------------------------------ schedule
    @property
    def passes(self) -> int:
        """Generator steps per batch: with the reference's maps, and (SRNTT) with the truth's."""
        return 2 if self.refsr else 1

    def global_step(self, it: int) -> int:
        """The released ``global_step`` before batch ``it`` (0 without a critic: the released
        reconstruction-only optimiser neither decays nor counts)."""
        if self.disc is None:
            return 0
        if self.decay == "batches":
            return it
        return it * (CRITIC_STEPS + 2 * self.passes)

    def lr_at(self, step: int) -> float:
        """Staircase decay x0.1 every ``max(iterations / 2, 1)`` steps (the released
        ``exponential_decay(..., staircase=True)``); constant without a critic."""
        if self.disc is None:
            return self.cfg.lr
        return self.cfg.lr * DECAY_RATE ** (step // max(self.cfg.iterations / 2, 1))

    def _set_lr(self, opt, lr: float) -> None:
        for group in opt.param_groups:
            group["lr"] = lr

    # ------------------------------------------------------------------ one batch
    def _generator(self, lr_t, maps):
        return self.model.raw(lr_t, maps) if self.refsr else self.model.raw(lr_t)

    def _critic_step(self, hr_t, fake, step: int, it: int, k: int) -> dict:
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed * 7919 + it * 8 + k)
        terms = L.critic_loss(self.disc, hr_t, fake, self.loss_cfg.gp, generator=gen)
        self.disc_opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        self._average_gradients(self.disc)
        self._set_lr(self.disc_opt, self.lr_at(step))
        self.disc_opt.step()
        return {"d_wgan": terms["wgan"].item(), "d_gp": terms["gp"].item()}

    def _generator_terms(self, sr_t, hr_t, hr_feats, maps, cosine) -> dict:
        cfg = self.loss_cfg
        terms = {}
        if cfg.reconstruction > 0:
            terms["reconstruction"] = L.reconstruction(sr_t, hr_t)
        if cfg.perceptual > 0 or cfg.texture > 0:
            sr_feats = self.vgg((sr_t + 1) / 2)
            if cfg.perceptual > 0:
                terms["perceptual"] = L.perceptual(sr_feats, hr_feats, cfg.perceptual_layer)
            if cfg.texture > 0:
                terms["texture"] = L.texture(sr_feats, maps, cosine)
        if cfg.adversarial > 0:
            terms["adversarial"] = L.adversarial(self.disc, sr_t)
        terms["total"] = sum((getattr(cfg, k) * v for k, v in terms.items()), sr_t.new_zeros(()))
        return terms

    def step(self, it: int) -> dict:
        batch = self._batch(it)
        lr_t, hr_t = 2 * batch["lr"] - 1, 2 * batch["hr"] - 1
        passes: list[tuple[dict, torch.Tensor | None]] = [({}, None)]
        hr_feats = {}
        if self.vgg is not None:
            with torch.no_grad():
                hr_feats = self.vgg(batch["hr"])
        if self.refsr:
            with torch.no_grad():
                ref_feats = self.vgg(batch["ref"])
            maps, _ = swapped_maps(batch, ref_feats, self.device)
            cosine = truth_cosine = None
            if self.weighted:
                cosine = torch.stack([c.cosine for c in batch["corr"]])[:, None].to(self.device)
                truth_cosine = torch.ones_like(cosine)  # the released truth step feeds ones
            truth = {layer: hr_feats[layer] for layer in SWAP_SCALES}
            passes = [(maps, cosine), (truth, truth_cosine)]
        step = self.global_step(it)
        row: dict = {"lr": self.lr_at(step)}
        if self.disc is not None:
            with torch.no_grad():
                fake = self._generator(lr_t, passes[0][0])
            for k in range(CRITIC_STEPS):
                row.update(self._critic_step(hr_t, fake, step, it, k))
                step += 1
        for p, (maps, cosine) in enumerate(passes):
            sr_t = self._generator(lr_t, maps)
            terms = self._generator_terms(sr_t, hr_t, hr_feats, maps, cosine)
            self.opt.zero_grad(set_to_none=True)
            terms["total"].backward()
            self._average_gradients(self.model)
            if self.disc is not None:  # the joint step: the critic on the same forward pass
                row.update(self._critic_step(hr_t, sr_t.detach(), step, it, CRITIC_STEPS + p))
            self._set_lr(self.opt, self.lr_at(step))
            self.opt.step()
            if self.disc is not None:
                step += 2
            if p == 0:
                first_sr = sr_t.detach()
            suffix = "" if p == 0 else "_truth"
            row.update({f"{k}{suffix}": v.item() for k, v in terms.items()})
        with torch.no_grad():  # of the first pass (with the reference's maps)
            mse = F.mse_loss(((first_sr + 1) / 2).clamp(0, 1), batch["hr"]).item()
        row["train_psnr"] = -10.0 * torch.log10(torch.tensor(max(mse, 1e-12))).item()
        return row if self.dist is None else self.dist.mean_of(row)


__all__ = ["LR_DECAY_MODES", "OfficialTrainer"]

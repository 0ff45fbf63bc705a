"""Inference: super-resolve an LR image with any model (bicubic, SISR, SRNTT, TTSR), any size.

For SRNTT the correspondence is computed once over the whole image (with the VGG19 of the
checkpoint's recipe: torchvision's for refsr, the official recipe's for official, see
:mod:`refsr.features.matconvnet`) (streamed,
memory-bounded by ``max_mb``) and the swapped maps M are built for the whole
image; the network then runs over overlapping LR tiles (``tile`` LR pixels plus
``pad`` of context on each side), so activation memory stays bounded for large
inputs. ``tile=0`` runs the network on the whole image at once.

TTSR (a registry entry with ``textures: learned``) brings its own texture extractor and search:
its soft attention and transferred textures are computed once over the whole image against
every reference (:meth:`refsr.models.ttsr.TTSR.textures`, memory-bounded by ``max_mb``), then
its main network runs over the same tiles, in [-1, 1] as released.

What the matching compares (``reference.degrade``): bicubic LR↑ against bicubic Ref↓↑ (SRNTT and
TTSR as published), or, given ``matching_sisr`` (a single-image SR model), SISR(LR) against
SISR(Ref↓): matching in the SR domain. Either way the transferred textures are the reference's
own features, and the alignment of ``reference.align`` works on bicubic LR↑.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Mapping

import numpy as np
import torch

from refsr.core.config import defaults
from refsr.core.device import torch_device
from refsr.core.errors import RefsrError
from refsr.core.imageio import MIN_SIDE, from_tensor, to_tensor
from refsr.data.resize import degrade, down_up, upscale
from refsr.features.matconvnet import load_official_vgg19
from refsr.features.vgg import load_vgg19
from refsr.inference.align import AlignStats, ReferenceAligner
from refsr.matching import relevance, transfer
from refsr.matching.cache import FeatureCache, combine, key_of
from refsr.matching.transfer import vgg_token
from refsr.models import registry
from refsr.models.checkpoint import load_checkpoint

log = logging.getLogger(__name__)

BICUBIC = "bicubic"
#: ``inference.dtype``: the network pass in float32 or under bf16 autocast (matching, VGG19 and
#: TTSR's search stay float32); ``auto`` = bf16 on CUDA, float32 on the CPU.
DTYPES = ("auto", "fp32", "bf16")


class SuperResolver:
    """``sr = SuperResolver(...)(lr, refs)`` on uint8 RGB arrays."""

    def __init__(self, checkpoint: str | None, model: str | None = None, vgg_weights: str | None = None,
                 device: str = "cpu", max_mb: float | None = None, tile: int | None = None,
                 pad: int | None = None, scale: int | None = None, resize: str | None = None,
                 match_mode: str | None = None, approx: dict | None = None,
                 aligner: ReferenceAligner | None = None, vgg_mat: str | None = None,
                 matching_sisr: SuperResolver | None = None, dtype: str | None = None):
        # unset: the schema's defaults (matching.max_mb, inference.tile/pad/dtype, scale, resize, matching)
        max_mb = defaults("matching.max_mb") if max_mb is None else max_mb
        tile = defaults("inference.tile") if tile is None else tile
        pad = defaults("inference.pad") if pad is None else pad
        scale = defaults("scale") if scale is None else scale
        resize = defaults("resize") if resize is None else resize
        match_mode = defaults("matching.mode") if match_mode is None else match_mode
        dtype = defaults("inference.dtype") if dtype is None else dtype
        if isinstance(tile, bool) or not isinstance(tile, numbers.Integral) or tile < 0:
            raise RefsrError("tile", f"must be an integer >= 0 (0 = whole image), got {tile!r}")
        if isinstance(pad, bool) or not isinstance(pad, numbers.Integral) or pad < 0:
            raise RefsrError("pad", f"must be an integer >= 0, got {pad!r}")
        if not (isinstance(max_mb, numbers.Real) and not isinstance(max_mb, bool) and math.isfinite(max_mb) and max_mb > 0):
            raise RefsrError("max_mb", f"must be a finite number > 0, got {max_mb!r}")
        self.scale, self.resize, self.max_mb, self.tile, self.pad = scale, resize, max_mb, tile, pad
        if match_mode not in ("exact", "approximate"):
            raise RefsrError("matching mode", f"must be exact or approximate, got {match_mode!r}")
        self.match_mode, self.approx = match_mode, approx  # SRNTT's patch matching (refsr.matching.match)
        self.device = torch_device(device)
        if dtype not in DTYPES:
            raise RefsrError("inference.dtype", f"must be one of {', '.join(DTYPES)}, got {dtype!r}")
        # the network pass in bf16 (autocast): inference.dtype bf16, or auto on CUDA
        self.bf16 = dtype == "bf16" or (dtype == "auto" and self.device.type == "cuda")
        # reference.align: each reference warped into LR↑'s frame before Ref↓↑ (refsr.inference.align)
        self.aligner = aligner or ReferenceAligner("none")
        self.align_stats = AlignStats()
        if matching_sisr is not None and matching_sisr.uses_reference:
            raise RefsrError("reference.sisr_model", f"must be a single-image model, got {matching_sisr.name}")
        self.matching_sisr = matching_sisr  # reference.degrade sr_model: match SISR(LR) to SISR(Ref↓)
        self.net = self.vgg = None
        # what the levels (and models) of one image share, by the bytes of the inputs; run_inference
        # gives every job one, bounded (refsr.matching.cache); by default nothing is kept
        self.cache = FeatureCache(0)
        self.learned = self.end_to_end = False  # TTSR: own extractor and search; C2-Matching, MASA-SR: own test path
        if model == BICUBIC or checkpoint == BICUBIC:
            if checkpoint not in (None, BICUBIC):
                raise RefsrError("checkpoint", f"model bicubic takes no checkpoint, got {checkpoint}")
            self.name = BICUBIC
            return
        if checkpoint is None:
            raise RefsrError("checkpoint", f"required: a trained checkpoint of {model or 'a model'}, "
                                           "or 'bicubic' for bicubic upsampling")
        self.net, ckpt = load_checkpoint(checkpoint, expected=model, map_location="cpu")
        self.net = self.net.to(self.device).eval()
        self.name = ckpt["model"]
        self.recipe = str(ckpt.get("recipe", registry.get(self.name).recipe))
        spec = registry.get(self.name)
        self.learned = spec.uses_reference and spec.textures == "learned"
        # C2-Matching, MASA-SR: the released test path end to end (its preprocessing and search)
        self.end_to_end = spec.uses_reference and spec.textures == "released"
        if self.end_to_end and dtype == "bf16":
            log.warning("%s: inference.dtype bf16 does not apply; the released test path runs in float32",
                        self.name)
        if self.end_to_end and scale != 4:  # the released networks are x4
            raise RefsrError("scale", f"{self.name} is a x4 network (released weights), got scale {scale}")
        if self.learned:
            self.net.max_mb, self.net.match_mode, self.net.approx = max_mb, match_mode, approx
        elif spec.uses_reference and not self.end_to_end:  # SRNTT: refsr swaps VGG19 maps
            layers = ("relu1_1", "relu2_1", "relu3_1")
            if self.recipe == "official":  # its maps in the units of the VGG19 it was trained with
                self.vgg = load_official_vgg19(layers, mat=vgg_mat, weights=vgg_weights, device=self.device)
            else:
                self.vgg = load_vgg19(layers, weights=vgg_weights, device=self.device)

    @classmethod
    def from_config(cls, cfg: Mapping, checkpoint: str | None, sisr_checkpoint: str | None = None,
                    max_mb: float | None = None) -> SuperResolver:
        """The resolver of an inference job spec (:func:`refsr.pipeline.jobs.resolver`: model,
        scale, resize, device, VGG19 files, ``inference``, ``matching``, the pruned
        ``reference``); ``max_mb`` is a setting (unset: the schema's). With
        ``reference.degrade: sr_model`` the matching compares the outputs of the single-image
        model ``reference.sisr_model`` from ``sisr_checkpoint``."""
        ref, inf = cfg["reference"], cfg["inference"]
        common = dict(device=cfg["device"], tile=inf["tile"], pad=inf["pad"], scale=cfg["scale"],
                      resize=cfg["resize"])
        sisr = None
        if ref is not None and ref["degrade"] == "sr_model":
            if not sisr_checkpoint:
                raise RefsrError("reference.degrade", f"sr_model needs the checkpoint of "
                                                      f"{ref.get('sisr_model') or 'a single-image model'}")
            sisr = cls(sisr_checkpoint, model=ref.get("sisr_model"), **common)
        matching = cfg["matching"] or {}  # None for a model without references
        return cls(checkpoint, model=cfg["model"], vgg_weights=cfg["vgg19_weights"], max_mb=max_mb, dtype=inf["dtype"],
                   match_mode=matching.get("mode"), approx=matching.get("approximate"),
                   aligner=ReferenceAligner.from_config(ref, cfg["scale"]), vgg_mat=cfg["vgg19_mat"],
                   matching_sisr=sisr, **common)

    @property
    def uses_reference(self) -> bool:
        return self.vgg is not None or self.learned or self.end_to_end

    @torch.no_grad()
    def __call__(self, lr: np.ndarray, refs: list[np.ndarray] | None = None,
                 names: list[str] | None = None) -> np.ndarray:
        """The SR of ``lr``; ``names`` (the reference files) are what errors call the references."""
        if self.name == BICUBIC:
            return upscale(lr, self.scale, self.resize)
        lr_t = to_tensor(lr, self.device)
        if not self.uses_reference:
            return from_tensor(self._tiled(lr_t, {}))
        if not refs:
            raise RefsrError("--ref", f"{self.name} needs at least one reference image")
        for i, ref in enumerate(refs):
            if min(ref.shape[:2]) < MIN_SIDE:
                raise RefsrError(names[i] if names else f"reference {i + 1}", f"is {ref.shape[1]}x{ref.shape[0]}, smaller than "
                                                       f"one relu3_1 patch ({MIN_SIDE}x{MIN_SIDE})")
        lr_up_img = self.cache.get(("upscale", self.scale, self.resize, key_of(lr)),
                                   lambda: upscale(lr, self.scale, self.resize))
        refs = [self._align(lr_up_img, r) for r in refs]
        if self.end_to_end:  # whole image, float32: its search must see every position at once
            return self.net.super_resolve(lr, refs, max_mb=self.max_mb)
        lr_up = to_tensor(lr_up_img if self.matching_sisr is None else self.matching_sisr(lr), self.device)
        if self.learned:  # TTSR: references cropped to a multiple of the scale, as released
            s = self.scale
            refs_t = [to_tensor(r, self.device) for r in refs]
            refs_t = [r[..., : r.shape[-2] // s * s, : r.shape[-1] // s * s] for r in refs_t]
            refs_du = [to_tensor(self._ref_down_up(r), self.device) for r in refs]
            maps = self._textures(lr_up * 2 - 1, [r * 2 - 1 for r in refs_t], [r * 2 - 1 for r in refs_du])
            return from_tensor(self._tiled(lr_t, maps))
        # SRNTT: the references stay uint8; transfer streams them in tiles within max_mb
        _, maps = transfer(lr_up, refs, self.vgg, max_mb=self.max_mb,
                           refs_down_up=[self._ref_down_up(r) for r in refs],
                           mode=self.match_mode, approx=self.approx, names=names, cache=self.cache)
        return from_tensor(self._tiled(lr_t, maps))

    def _textures(self, lrsr: torch.Tensor, refs: list[torch.Tensor], refs_sr: list[torch.Tensor]) -> dict:
        """:meth:`refsr.models.ttsr.TTSR.textures` step by step, each LTE pass and (exact mode) each
        reference's search through :attr:`cache`, so the levels of one image share them (``ALL``
        combines the per-reference searches); the same maps (``tests/test_infer_cache.py``)."""
        net, token = self.net, vgg_token(self.net)

        def lte(x: torch.Tensor):
            return self.cache.get(("lte", token, key_of(x)), lambda: net.lte(x))

        _, _, content = lte(lrsr)
        cands = [lte(r)[2][0] for r in refs_sr]
        if net.match_mode == "exact":
            ckey = key_of(content)
            corr = combine([self.cache.get(("search", token, float(net.max_mb), ckey, key_of(c)),
                                           lambda c=c: relevance.search(content[0], [c], net.max_mb, "exact"))
                            for c in cands])
        else:
            corr = relevance.search(content[0], cands, net.max_mb, net.match_mode, net.approx)
        levels = []
        for r in refs:
            lv1, lv2, lv3 = lte(r)
            levels.append({"relu1_1": lv1[0], "relu2_1": lv2[0], "relu3_1": lv3[0]})
        out = relevance.transfer(corr, levels, net.max_mb)
        out["S"] = corr.cosine[None, None].to(content.dtype)
        self.last_correspondence = corr
        return out

    def _ref_down_up(self, ref: np.ndarray) -> np.ndarray:
        """The reference as the matching sees it: Ref↓↑ (bicubic down, then bicubic up or the
        SISR model of ``reference.degrade: sr_model``), the size of the reference mod-cropped."""
        sisr = "" if self.matching_sisr is None else vgg_token(self.matching_sisr)
        return self.cache.get(("down_up", self.scale, self.resize, sisr, key_of(ref)), lambda: self._down_up(ref))

    def _down_up(self, ref: np.ndarray) -> np.ndarray:
        if self.matching_sisr is None:
            return down_up(ref, self.scale, self.resize)
        return self.matching_sisr(degrade(ref, self.scale, self.resize, where="reference")[1])

    def _align(self, lr_up: np.ndarray, ref: np.ndarray) -> np.ndarray:
        a = self.aligner(lr_up, ref)
        self.align_stats.add(a)
        if a.status.startswith("fallback"):
            log.info("reference kept unwarped (%s, %d inliers)", a.status.removeprefix("fallback: "), a.inliers)
        return a.image

    def _run(self, lr: torch.Tensor, maps: dict) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            if self.learned:
                return (self.net.run_main(lr * 2 - 1, maps).float() + 1) / 2
            out = self.net(lr, maps) if self.uses_reference else self.net(lr)
        return out.float()

    def _tiled(self, lr: torch.Tensor, maps: dict) -> torch.Tensor:
        h, w = lr.shape[-2:]
        t, p, s = self.tile, self.pad, self.scale
        if t <= 0 or (h <= t and w <= t):
            return self._run(lr, maps)
        out = torch.zeros(1, 3, h * s, w * s, device=lr.device)
        for y0 in range(0, h, t):
            for x0 in range(0, w, t):
                ya, yb, xa, xb = max(0, y0 - p), min(h, y0 + t + p), max(0, x0 - p), min(w, x0 + t + p)
                crops = {k: m[..., ya * m.shape[-2] // h:yb * m.shape[-2] // h,
                              xa * m.shape[-1] // w:xb * m.shape[-1] // w] for k, m in maps.items()}
                sr = self._run(lr[..., ya:yb, xa:xb], crops)
                y1, x1 = min(h, y0 + t), min(w, x0 + t)
                out[..., y0 * s:y1 * s, x0 * s:x1 * s] = sr[..., (y0 - ya) * s:(y1 - ya) * s,
                                                          (x0 - xa) * s:(x1 - xa) * s]
        return out

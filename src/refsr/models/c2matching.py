"""C2-Matching (Jiang et al., CVPR 2021) inference as released (yumingj/C2-Matching, commit 6d60149).

The released test path (``RefRestorationModel.test``): :class:`ContrasExtractorSep` (two VGG16
branches to conv3_1 without its ReLU, ImageNet mean/std; branch 1 on the bicubic LR↑, branch 2 on
the reference) → the correspondence (per-pixel L2-normalised features, 3×3 reference patches
divided by their norm + 1e-5, argmax of the correlation: :func:`feature_match_index`; the index
as a flow, :func:`index_to_flow`; 9 shifted copies per DCN tap, ×2/×4 for relu2_1/relu1_1,
:func:`pre_offsets`; no similarity weighting) and the reference's VGG19 relu1_1..relu3_1 →
:class:`RestorationNet` (three modulated deformable convolutions, 8 groups, offsets = learned +
pre-offsets; output = residual + bilinear(LR)×4, no clamp).

Parameter names are the released ones (``net_g.*``: RestorationNet, ``net_extractor.*``:
ContrasExtractorSep), so the released state dicts load with ``strict=True``. DCNv2's CUDA kernel
is ``torchvision.ops.deform_conv2d``: the same offset layout (per group, per tap: dy, dx), mask
layout and bilinear rule (a sample counts when -1 < y < H and -1 < x < W; corners outside read 0).

Differences from the released code (none changes what is computed): the matching streams over
reference-patch chunks *and* input row bands to fit ``max_mb`` (``None``: the released chunks of
``int(2**29 / (h*w))`` patches over the whole input), ties to the earliest patch in both;
``max_val`` is divided by the input-patch norm only on request (the released code does it, then
discards the value); the VGG19 is refsr's :class:`refsr.features.vgg.VGGFeatures`.

Entry points: :func:`released_test_path` (HR + reference → the PNG the released test writes) and
:func:`super_resolve` (an LR made elsewhere + references → ×4 uint8, for the pipeline).
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from torchvision.ops import deform_conv2d

from refsr.core.errors import RefsrError
from refsr.features.vgg import IMAGENET_MEAN, IMAGENET_STD, VGGFeatures

log = logging.getLogger(__name__)

SCALE = 4
PATCH = 3
REF_LAYERS = ("relu1_1", "relu2_1", "relu3_1")
#: Smallest HR (and padded reference) side: the relu3_1-scale map must hold one 3×3 patch.
MIN_HR_SIDE = SCALE * PATCH
#: Elements of one correlation block in the released ``feature_match_index`` (``1024**2 * 512``).
RELEASED_BLOCK = 2**29


# ----------------------------------------------------------------------------- contrastive extractor

#: VGG16 ``features`` up to conv3_1 by the released layer names (torchvision indices 0..10):
#: (name, in, out) of a conv, (name,) of a ReLU or a 2×2 max-pool.
_VGG16_TO_CONV3_1 = (("conv1_1", 3, 64), ("relu1_1",), ("conv1_2", 64, 64), ("relu1_2",), ("pool1",),
                     ("conv2_1", 64, 128), ("relu2_1",), ("conv2_2", 128, 128), ("relu2_2",), ("pool2",),
                     ("conv3_1", 128, 256))


class ContrasExtractorLayer(nn.Module):
    """One branch: ImageNet normalisation, VGG16 conv1_1 .. conv3_1 (the last conv without ReLU)."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(OrderedDict(
            (n, nn.Conv2d(*c, 3, 1, 1) if c else nn.ReLU(inplace=True) if n[0] == "r" else nn.MaxPool2d(2, 2))
            for n, *c in _VGG16_TO_CONV3_1))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.model((x - self.mean) / self.std)


class ContrasExtractorSep(nn.Module):
    """The two branches with separate weights (``feature_extraction.pth``)."""

    def __init__(self) -> None:
        super().__init__()
        self.feature_extraction_image1 = ContrasExtractorLayer()
        self.feature_extraction_image2 = ContrasExtractorLayer()

    def forward(self, image1: Tensor, image2: Tensor) -> dict[str, Tensor]:
        return {"dense_features1": self.feature_extraction_image1(image1), "dense_features2":
                self.feature_extraction_image2(image2)}


# ----------------------------------------------------------------------------- matching


def _ref_patches(ref: Tensor, i0: int, i1: int, gw: int, p: int) -> Tensor:
    """Reference patches ``i0 .. i1-1`` (row-major over the patch grid, width ``gw``) as ``n x C x p x p``."""
    r0, r1 = i0 // gw, (i1 - 1) // gw + 1
    pat = ref[:, r0:r1 + p - 1].unfold(1, p, 1).unfold(2, p, 1)  # C x (r1-r0) x gw x p x p
    pat = pat.permute(1, 2, 0, 3, 4).reshape((r1 - r0) * gw, ref.shape[0], p, p)
    return pat[i0 - r0 * gw:i1 - r0 * gw]


def match_plan(c: int, h: int, w: int, n_ref: int, patch: int = PATCH,
               max_mb: float | None = None, ref_width: int | None = None) -> tuple[int, int]:
    """``(patches per chunk, input rows per band)`` of :func:`feature_match_index`: the released
    plan for ``max_mb=None``, else the largest whose :func:`block_bytes` fits (at least 1 x 1)."""
    gh_in = h - patch + 1
    if max_mb is None:
        return max(1, RELEASED_BLOCK // (h * w)), gh_in
    budget = max_mb * 2**20
    gw_ref = (ref_width if ref_width is not None else w) - patch + 1
    chunk, rows = n_ref, gh_in
    while block_bytes(c, w, chunk, rows, patch, gw_ref) > budget and (chunk > 1 or rows > 1):
        # shrink the reference chunk first, down to one patch-grid row; then the input band
        if chunk > gw_ref or rows == 1:
            chunk = max(1, chunk * 3 // 4)
        else:
            rows = max(1, rows * 3 // 4)
    return chunk, rows


def block_bytes(c: int, w: int, chunk: int, rows: int, patch: int = PATCH, gw_ref: int | None = None) -> int:
    """Peak extra bytes of one block: the correlation ``chunk x rows x (w-p+1)`` and its max, the
    normalised patches (and the grid rows cut), the unfolded input band (a CPU convolution's)."""
    gw_in, k = w - patch + 1, c * patch * patch
    gw_ref = gw_in if gw_ref is None else gw_ref
    band = k * rows * gw_in + c * (rows + patch - 1) * w
    return 4 * (chunk * rows * gw_in + (chunk + 2 * gw_ref) * k + band + 2 * rows * gw_in) + 16 * rows * gw_in


@torch.no_grad()
def feature_match_index(feat_input: Tensor, feat_ref: Tensor, patch_size: int = PATCH, is_norm: bool = True,
                        norm_input: bool = False, max_mb: float | None = None,
                        stats: dict | None = None) -> tuple[Tensor, Tensor]:
    """Released ``feature_match_index`` (stride 1) on ``C x h x w`` / ``C x hr x wr`` maps already
    L2-normalised per pixel: ``(max_idx, max_val)``, ``(h-p+1) x (w-p+1)``. Reference patches / (norm
    + 1e-5) (``is_norm``), ``conv2d`` (valid), argmax with a running max over chunks (strict ``>``:
    ties to the earlier chunk; within one, to the lower index). ``norm_input`` divides ``max_val``
    by the input patch norm + 1e-5. ``stats`` receives ``plan`` and ``peak_block_bytes``."""
    c, h, w = feat_input.shape
    _, hr, wr = feat_ref.shape
    p = patch_size
    if min(h, w, hr, wr) < p:
        raise RefsrError("C2-Matching", f"feature maps {h}x{w} / {hr}x{wr} are smaller than one {p}x{p} patch")
    gh_in, gw_in, gw = h - p + 1, w - p + 1, wr - p + 1
    n_ref = (hr - p + 1) * gw
    chunk, rows = match_plan(c, h, w, n_ref, p, max_mb, ref_width=wr)
    max_val = torch.full((gh_in, gw_in), -torch.inf, dtype=feat_input.dtype, device=feat_input.device)
    max_idx = torch.zeros(gh_in, gw_in, dtype=torch.int64, device=feat_input.device)
    peak = 0
    for y0 in range(0, gh_in, rows):
        y1 = min(gh_in, y0 + rows)
        band, best_v, best_i = feat_input[:, y0:y1 + p - 1].unsqueeze(0), max_val[y0:y1], max_idx[y0:y1]
        for i0 in range(0, n_ref, chunk):
            batch = _ref_patches(feat_ref, i0, min(n_ref, i0 + chunk), gw, p)
            if is_norm:
                batch = batch / (batch.norm(p=2, dim=(1, 2, 3)) + 1e-5).view(-1, 1, 1, 1)
            peak = max(peak, block_bytes(c, w, batch.shape[0], y1 - y0, p, gw))
            v, i = F.conv2d(band, batch)[0].max(dim=0)
            better = v > best_v  # strict: the earlier chunk keeps a tie
            best_v.copy_(torch.where(better, v, best_v))
            best_i.copy_(torch.where(better, i + i0, best_i))
            del batch
    if norm_input:
        pat = feat_input.unfold(1, p, 1).unfold(2, p, 1)  # C x gh x gw x p x p
        max_val = max_val / (pat.pow(2).sum(dim=(0, 3, 4)).sqrt() + 1e-5)
    if stats is not None:
        stats.update(plan=(chunk, rows), peak_block_bytes=peak)
    return max_idx, max_val


def index_to_flow(max_idx: Tensor) -> Tensor:
    """``1 x h x w x 2`` flow ``[x, y]`` = (idx mod w' - x, idx div w' - y), ``w'`` = the *input*
    patch-grid width, with two zero rows and columns appended (bottom/right), as released."""
    gw = max_idx.shape[1]
    ys, xs = (torch.arange(n, device=max_idx.device) for n in max_idx.shape)
    ys, xs = ys.view(-1, 1), xs.view(1, -1)
    flow = torch.stack(((max_idx % gw - xs).float(), (max_idx // gw - ys).float()), dim=2)
    return F.pad(flow, (0, 0, 0, 2, 0, 2)).unsqueeze(0)


def shift_flow(flow: Tensor, dy: int, dx: int) -> Tensor:
    """``out(y, x) = flow(y - dy, x - dx)``, zero where that falls outside (``1 x h x w x 2``)."""
    out, (h, w) = torch.zeros_like(flow), flow.shape[1:3]
    out[:, dy:, dx:] = flow[:, :max(0, h - dy), :max(0, w - dx)]
    return out


def pre_offsets(flow: Tensor) -> dict[str, Tensor]:
    """The 9 shifted copies per layer, ``{layer: 9 x h x w x 2}`` ([x, y]); relu2_1/relu1_1 are the
    relu3_1 flow repeated ×2/×4 (nearest), multiplied by 2/4 and shifted by (2i, 2j)/(4i, 4j)."""
    out = {}
    for layer, f in (("relu3_1", 1), ("relu2_1", 2), ("relu1_1", 4)):
        up = flow.repeat_interleave(f, 1).repeat_interleave(f, 2) * f if f > 1 else flow
        out[layer] = torch.cat([shift_flow(up, i * f, j * f) for i in range(3) for j in range(3)], dim=0)
    return out


# ----------------------------------------------------------------------------- restoration


class ResidualBlockNoBN(nn.Module):
    """conv-ReLU-conv + identity (no batch norm), 3×3, ``nf`` channels."""

    def __init__(self, nf: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def _blocks(n: int, nf: int) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlockNoBN(nf) for _ in range(n)))


class DynAgg(nn.Module):
    """``DCN_sep_pre_multi_offset``: a 3×3 modulated deformable convolution whose offsets and
    masks come from another feature (``conv_offset_mask``, 3·groups·9 channels, split in three:
    offsets = the first two thirds, mask = sigmoid of the last), plus the pre-offsets added to
    every group (channel ``2(g·9+k)`` += y, ``2(g·9+k)+1`` += x of copy k)."""

    def __init__(self, in_channels: int, out_channels: int, groups: int = 8, kernel: int = 3,
                 padding: int = 1) -> None:
        super().__init__()
        self.deformable_groups, self.kernel, self.padding = groups, kernel, padding
        bound = 1 / math.sqrt(in_channels * kernel * kernel)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel, kernel).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.conv_offset_mask = nn.Conv2d(in_channels, groups * 3 * kernel * kernel, kernel, 1, padding)
        nn.init.zeros_(self.conv_offset_mask.weight), nn.init.zeros_(self.conv_offset_mask.bias)

    def offset_mask(self, feat: Tensor, pre_offset: Tensor) -> tuple[Tensor, Tensor]:
        """The offset (``N x 2·g·k² x h x w``, learned + pre-offset) and mask the kernel receives;
        ``pre_offset``: ``N x k² x h x w x 2`` ([x, y])."""
        out = self.conv_offset_mask(feat)
        n_off = 2 * self.deformable_groups * self.kernel ** 2
        offset, mask = out[:, :n_off], torch.sigmoid(out[:, n_off:])
        rep = pre_offset.repeat(1, self.deformable_groups, 1, 1, 1)  # N x g·k² x h x w x 2
        pre = torch.stack((rep[..., 1], rep[..., 0]), dim=2).flatten(1, 2)  # (y, x) pairs
        return offset + pre, mask

    def forward(self, x: Tensor, feat: Tensor, pre_offset: Tensor) -> Tensor:
        offset, mask = self.offset_mask(feat, pre_offset)
        return deform_conv2d(x, offset, self.weight, self.bias, stride=1, padding=self.padding, mask=mask)


class ContentExtractor(nn.Module):
    """conv_first + LeakyReLU(0.1), then the residual blocks (on the LR)."""

    def __init__(self, nf: int = 64, n_blocks: int = 16) -> None:
        super().__init__()
        self.conv_first = nn.Conv2d(3, nf, 3, 1, 1)
        self.body = _blocks(n_blocks, nf)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(F.leaky_relu(self.conv_first(x), 0.1))


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1)


class DynamicAggregationRestoration(nn.Module):
    """Three stages (relu3_1 at LR scale, relu2_1 at ×2, relu1_1 at ×4), released names."""

    def __init__(self, ngf: int = 64, n_blocks: int = 16, groups: int = 8) -> None:
        super().__init__()
        for stage, ch in (("small", 256), ("medium", 128), ("large", 64)):
            setattr(self, f"{stage}_offset_conv1", _conv(ngf + ch, ch))
            setattr(self, f"{stage}_offset_conv2", _conv(ch, ch))
            setattr(self, f"{stage}_dyn_agg", DynAgg(ch, ch, groups))
            setattr(self, f"head_{stage}", nn.Sequential(_conv(ngf + ch, ngf), nn.LeakyReLU(0.1, True)))
            setattr(self, f"body_{stage}", _blocks(n_blocks, ngf))
            setattr(self, f"tail_{stage}", nn.Sequential(  # x2 pixel shuffle; the last one: to RGB
                _conv(ngf, ngf * 4), nn.PixelShuffle(2), nn.LeakyReLU(0.1, True)) if stage != "large" else
                nn.Sequential(_conv(ngf, ngf // 2), nn.LeakyReLU(0.1, True), _conv(ngf // 2, 3)))

    def _stage(self, stage: str, layer: str, x: Tensor, pre_offset: dict, ref_feat: dict) -> Tensor:
        ref = ref_feat[layer]
        off = F.leaky_relu(getattr(self, f"{stage}_offset_conv1")(torch.cat([x, ref], 1)), 0.1)
        off = F.leaky_relu(getattr(self, f"{stage}_offset_conv2")(off), 0.1)
        swapped = F.leaky_relu(getattr(self, f"{stage}_dyn_agg")(ref, off, pre_offset[layer]), 0.1)
        h = getattr(self, f"head_{stage}")(torch.cat([x, swapped], 1))
        h = getattr(self, f"body_{stage}")(h) + x
        return getattr(self, f"tail_{stage}")(h)

    def forward(self, x: Tensor, pre_offset: dict[str, Tensor], ref_feat: dict[str, Tensor]) -> Tensor:
        for stage, layer in (("small", "relu3_1"), ("medium", "relu2_1"), ("large", "relu1_1")):
            x = self._stage(stage, layer, x, pre_offset, ref_feat)
        return x


class RestorationNet(nn.Module):
    """Released ``RestorationNet`` (``c2_matching_restoration*.pth``): output = restoration +
    bilinear(LR, ×4, align_corners=False); no clamp."""

    def __init__(self, ngf: int = 64, n_blocks: int = 16, groups: int = 8) -> None:
        super().__init__()
        self.content_extractor = ContentExtractor(ngf, n_blocks)
        self.dyn_agg_restore = DynamicAggregationRestoration(ngf, n_blocks, groups)

    def forward(self, x: Tensor, pre_offset: dict[str, Tensor], ref_feat: dict[str, Tensor]) -> Tensor:
        base = F.interpolate(x, scale_factor=SCALE, mode="bilinear", align_corners=False)
        return self.dyn_agg_restore(self.content_extractor(x), pre_offset, ref_feat) + base


# ----------------------------------------------------------------------------- the whole method


class C2Matching(nn.Module):
    """Extractor (``net_extractor``), reference VGG19 to relu3_1 (``vgg``), RestorationNet (``net_g``).

    ``forward(img_in_lq, img_in_up, img_ref)`` (RGB in [0, 1]; ``img_in_up`` and ``img_ref`` of the
    same size, 4× the LR, a multiple of 4) is the released ``test()``: the unclamped output.
    ``max_mb`` (the attribute, or the argument) bounds the matching's correlation block (``None``:
    the released chunking). ``last_intermediates``: the dense features, ``max_idx``/``max_val``, the
    pre-offsets and the reference features of the last call (when ``keep_intermediates``).
    """

    def __init__(self, ngf: int = 64, n_blocks: int = 16, groups: int = 8) -> None:
        super().__init__()
        self.net_extractor = ContrasExtractorSep()
        self.vgg = VGGFeatures(REF_LAYERS, weights_source="c2matching checkpoint")
        self.net_g = RestorationNet(ngf, n_blocks, groups)
        self.max_mb: float | None = None
        self.keep_intermediates = True
        self.last_intermediates: dict = {}

    @torch.no_grad()
    def correspondence(self, img_in_up: Tensor, img_ref: Tensor, max_mb: float | None = None
                       ) -> tuple[dict, dict, dict]:
        """``(dense features, pre-offsets, matching)``: the released ``net_extractor`` + the
        matching half of ``CorrespondenceGenerationArch`` (one image of the batch at a time)."""
        if img_in_up.shape != img_ref.shape:
            raise RefsrError("C2-Matching", f"the input {tuple(img_in_up.shape)} and the reference "
                                            f"{tuple(img_ref.shape)} must have one size (pad them, as released)")
        feats = self.net_extractor(img_in_up, img_ref)
        runs = []
        for b in range(img_ref.shape[0]):
            fi, fr = (F.normalize(feats[k][b].flatten(1), dim=0).view_as(feats[k][b])
                      for k in ("dense_features1", "dense_features2"))
            runs.append(feature_match_index(fi, fr, PATCH, max_mb=self.max_mb if max_mb is None else max_mb))
        offs = [pre_offsets(index_to_flow(idx)) for idx, _ in runs]
        pre = {k: torch.stack([o[k] for o in offs]) for k in REF_LAYERS}
        return feats, pre, {"max_idx": torch.stack([i for i, _ in runs]), "max_val": torch.stack([v for _, v in runs])}

    def super_resolve(self, lr: np.ndarray, refs: Sequence[np.ndarray], max_mb: float | None = None) -> np.ndarray:
        """:func:`super_resolve` (the pipeline's entry: uint8 LR and references → uint8 ×4)."""
        return super_resolve(self, lr, refs, max_mb=max_mb)

    @torch.no_grad()
    def forward(self, img_in_lq: Tensor, img_in_up: Tensor, img_ref: Tensor, max_mb: float | None = None) -> Tensor:
        feats, pre, match = self.correspondence(img_in_up, img_ref, max_mb)
        ref_feat = self.vgg(img_ref)
        out = self.net_g(img_in_lq, pre, ref_feat)
        if self.keep_intermediates:
            self.last_intermediates = {**feats, **match, "pre_offset": pre, "ref_feat": ref_feat}
        return out


# ----------------------------------------------------------------------------- images in, images out


def _check_rgb8(arr: np.ndarray, what: str) -> np.ndarray:
    if (arr := np.asarray(arr)).dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise RefsrError(what, f"expected a uint8 RGB image H x W x 3, got {arr.dtype} {arr.shape}")
    return arr


def mod_crop(img: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """Drop the bottom/right remainder so both sides are multiples of ``scale``."""
    h, w = img.shape[:2]
    return img[:h - h % scale, :w - w % scale]


def pad_to(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Zero-pad at the bottom/right to ``h x w`` (``mmcv.impad`` with ``pad_val=0``)."""
    return np.pad(img, ((0, h - img.shape[0]), (0, w - img.shape[1]), (0, 0)))


def pil_bicubic(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """PIL ``BICUBIC`` resize of a uint8 RGB image to ``h x w`` (the released dataset's)."""
    return np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC))


def _tensor(img: np.ndarray, device) -> Tensor:
    """uint8 / float HWC → ``1 x 3 x H x W`` float32, ``/255`` in float32 as released."""
    arr = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None].to(device)


def quantise(out: Tensor) -> np.ndarray:
    """Released ``tensor2img`` + ``imwrite``: clamp to [0, 1], ×255 in float32, round half to even."""
    img = out[0].detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
    return np.round(img * np.float32(255.0)).astype(np.uint8)


@torch.no_grad()
def released_inputs(hr: np.ndarray, ref: np.ndarray) -> tuple[dict[str, Tensor], tuple[int, int]]:
    """``RefCUFEDDataset`` (phase test) on uint8 RGB arrays: the tensors it feeds and the size the
    output is cropped to (the mod-cropped HR's)."""
    hr, ref = mod_crop(_check_rgb8(hr, "input")), mod_crop(_check_rgb8(ref, "reference"))
    th, tw = max(hr.shape[0], ref.shape[0]), max(hr.shape[1], ref.shape[1])
    if min(th, tw) < MIN_HR_SIDE:
        raise RefsrError("input", f"{tw}x{th} after mod-crop and padding is smaller than {MIN_HR_SIDE}x{MIN_HR_SIDE}")
    lq = pil_bicubic(pad_to(hr, th, tw), th // SCALE, tw // SCALE)  # the LR is made after padding
    up = pil_bicubic(lq, th, tw)
    images = {"img_in_lq": lq, "img_in_up": up, "img_ref": pad_to(ref, th, tw), "img_in": hr}
    return {k: _tensor(v, "cpu") for k, v in images.items()}, hr.shape[:2]


@torch.no_grad()
def released_test_path(net: C2Matching, hr: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The image the released test writes for input ``hr`` and reference ``ref`` (uint8 RGB):
    mod-crop, zero-pad both to one size, PIL bicubic LR (after padding) and LR↑, the network,
    crop to the HR's size, clamp, ×255, round half to even."""
    inputs, (h, w) = released_inputs(hr, ref)
    out = net(*(inputs[k].to(next(net.parameters()).device) for k in ("img_in_lq", "img_in_up", "img_ref")))
    return quantise(out)[:h, :w]


@torch.no_grad()
def super_resolve(net: C2Matching, lr: np.ndarray, refs: Sequence[np.ndarray], max_mb: float | None = None,
                  return_float: bool = False) -> np.ndarray:
    """×4 SR of an LR made elsewhere (uint8 RGB), for the pipeline. The released network takes one
    reference: the **first** of ``refs`` (the others are ignored, logged). As released, the
    reference is mod-cropped to multiples of 4 and it and the input are zero-padded bottom/right to
    a common size; the input being the LR here, the LR is zero-padded to that size / 4 (the released
    code pads the HR before making the LR). LR↑ = PIL bicubic of the padded LR (as released), the
    network, the crop to ``4h x 4w``, clamp, round half to even (``return_float``: unclamped)."""
    lr = _check_rgb8(lr, "input")
    if not refs:
        raise RefsrError("--ref", "C2-Matching needs a reference image")
    if len(refs) > 1:
        log.info("C2-Matching takes one reference: using the first of %d", len(refs))
    ref = mod_crop(_check_rgb8(refs[0], "reference"))
    h, w = lr.shape[:2]
    th, tw = max(SCALE * h, ref.shape[0]), max(SCALE * w, ref.shape[1])
    if min(th, tw) < MIN_HR_SIDE:
        raise RefsrError("input", f"{tw}x{th} (×4 and padded) is smaller than {MIN_HR_SIDE}x{MIN_HR_SIDE}")
    lq = pad_to(lr, th // SCALE, tw // SCALE)
    up = pil_bicubic(lq, th, tw)  # LR↑ of the padded LR, as released
    dev = next(net.parameters()).device
    out = net(_tensor(lq, dev), _tensor(up, dev), _tensor(pad_to(ref, th, tw), dev), max_mb=max_mb)
    out = out[..., :SCALE * h, :SCALE * w]
    return out if return_float else quantise(out)

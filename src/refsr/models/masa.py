"""MASA-SR (Lu et al., "MASA-SR: Matching Acceleration and Spatial Adaptation for Reference-Based
Image Super-Resolution", CVPR 2021) as released (dvlab-research/MASA-SR, commit 80d1bd8:
``models/archs/MASA_arch.py``, the test path of ``test.py`` / ``models/trainer.py`` /
``dataloader/dataset.py``), with the released parameter names (``enc.*``, ``decoder.*``), so the
released ``masa.pth`` / ``masa_rec.pth`` load strictly (:mod:`refsr.models.importers.masa_official`).

The network (:class:`MASA`, ``forward(lr, ref, ref_down)``, BGR images in [0, 1] as the released
``cv2.imread`` loader gives them):

* **Encoder** (shared by LR, Ref↓ and Ref): 3 levels (stride 1, 2, 4), 4 residual blocks each.
* **Matching (MAM)**, on level 1 of LR and Ref↓: the LR features are cut into ``py × px`` blocks of
  ``k_y × k_x`` (``px = W // 8``, ``k = W // px``), each with a 1-pixel margin (replicate padding at
  the image border). *Coarse*: the 3x3 neighbourhood at the block's centre, at dilations 1, 2, 3,
  is compared (cosine, summed over the dilations) with every position of Ref↓ (zero padding), top-1.
  *Window*: ``(d + 2)`` on a side around it, ``d = 2·int(W_r // (2·px) · 1.5) + 1``, shifted inside
  Ref↓ exactly as the released mask arithmetic does (negative indices wrap, as released, when the
  window is larger than Ref↓). *Fine*: every 3x3 patch of the block (no padding) against every
  3x3 patch of the window, cosine, top-1 → index and soft attention.
* **Transfer** at x1 / x2 / x4 from levels 3 / 2 / 1 of the full-resolution Ref: the 3s×3s patch at
  stride s of the chosen window position, folded with padding s, divided by the fold of ones and
  multiplied by the bilinearly resized soft attention; blocks tiled back.
* **Decoder**: the LR pyramid, one shared SAM (``decoder.pAda``: instance-normalised reference,
  ``γ = conv(style) + std(lr)`` (unbiased), ``β = conv(style) + mean(lr)``) at x1, x2, x4, two DRAMs
  (``ConvTranspose2d`` weights [in, out, 3, 3]); the output is ``decoder + bicubic(lr)`` (torch's
  bicubic), not clamped.

**Memory** (``max_mb``, default :data:`DEFAULT_MAX_MB`; :mod:`refsr.models.masa_match`): the coarse
search, the fine search and the transfer are streamed. The coarse search takes Ref↓ in pieces of
rows, the fine search its blocks in groups (a block's window in pieces of rows only when one whole
window does not fit), so that the unfolded patches, their normalised copies and the scores fit in
``max_mb``; pieces are at least :data:`~refsr.models.masa_match.MIN_PIECE` candidates wide (one
piece may exceed ``max_mb`` for that) and balanced, so the scores are those of the released whole
product bit for bit on this CPU (MKL); the top-1 is merged across pieces keeping the lowest index
on exact ties (what the released ``topk`` returned at the fixture's four exact ties). The transfer
gathers only the chosen patches (the released code unfolds whole windows: about 6.8 GB at x4 for
five stacked CUFED5 references); gathering is an exact copy, so the transferred features equal the
released ones for the same indices. Not bounded: the encoder's feature levels of LR, Ref↓ and Ref
(the stacked 2560×512 reference: about 440 MB, plus the activations of one residual block), the
decoder's activations at the output size, and the per-pixel index and score tensors.

Test paths:

* :func:`released_test_path`: ``test.py`` on one HR image (RGB uint8 in, RGB uint8 out): BGR;
  HR replicate-padded (centred) to multiples of 32; ``LR_pad`` = PIL bicubic ÷4 of it; the reference
  padded bottom/right to a multiple of 16 (``TestSet``) or, for several references, each padded
  centred to 512×512 and stacked top to bottom (``TestSet_multi``); ``Ref↓`` = PIL bicubic ÷4; the
  output cropped to the HR size and written as ``floor(255·clamp(x, 0, 1) + 0.5)``.
* :func:`super_resolve`: the pipeline's call, given an LR: the LR replicate-padded (centred) to a
  multiple of 8 (at least 16 per side), the references prepared as above, the output cropped.

Deviations from the released code: the streamed search and gather (above; bit for bit the released
numbers on this CPU, ``tests/test_masa.py``); top-1 by :func:`torch.argmax` (first maximum) instead of
``topk``; no training losses (``forward`` takes no ``gt``);
sizes the released network cannot take are a one-line :class:`RefsrError` instead of a reshape
error; :func:`super_resolve` pads an LR narrower than 16 (the released window would not fit and
would silently wrap) and a reference smaller than 48 (Ref↓ 12) pixels; several references larger
than 512 (where the released loader fails) are padded to the common size, a multiple of 16.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from refsr.core.errors import RefsrError
from refsr.models.masa_match import DEFAULT_MAX_MB, LR_BLOCK, align, geometry

SCALE = 4
#: The released test path pads HR to multiples of this (so LR_pad is a multiple of 8).
HR_MULTIPLE = 32
#: References are padded to a multiple of this (bottom/right for one, centred stack for several).
REF_MULTIPLE = 16
#: ``TestSet_multi`` pads each reference to this square before stacking them.
MULTI_REF_SIDE = 512
#: :func:`super_resolve`: the smallest LR side (px >= 2 blocks) and reference side (Ref↓ >= 12).
MIN_LR_SIDE = 16
MIN_REF_SIDE = 48


# ----------------------------------------------------------------------------- modules


class ResidualBlock(nn.Module):
    """conv - ReLU - conv, plus the input."""

    def __init__(self, nf: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1, bias=True)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1, bias=True)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.act(self.conv1(x))) + x


def _blocks(n: int, nf: int) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlock(nf) for _ in range(n)))


class SAM(nn.Module):
    """Spatial adaptation: the reference, instance-normalised, re-styled by the LR features."""

    def __init__(self, nf: int = 64):
        super().__init__()
        self.norm_layer = nn.InstanceNorm2d(nf, affine=False)
        self.conv_shared = nn.Sequential(nn.Conv2d(nf * 2, nf, 3, 1, 1, bias=True), nn.ReLU(inplace=True))
        self.conv_gamma = nn.Conv2d(nf, nf, 3, 1, 1, bias=True)
        self.conv_beta = nn.Conv2d(nf, nf, 3, 1, 1, bias=True)

    def forward(self, lr: Tensor, ref: Tensor) -> Tensor:
        normed = self.norm_layer(ref)
        style = self.conv_shared(torch.cat([lr, ref], dim=1))
        gamma, beta = self.conv_gamma(style), self.conv_beta(style)
        b, c, h, w = lr.shape
        flat = lr.reshape(b, c, h * w)
        mean = flat.mean(dim=-1, keepdim=True).unsqueeze(3)
        std = flat.std(dim=-1, keepdim=True).unsqueeze(3)  # unbiased, as torch.std defaults
        return normed * (gamma + std) + (beta + mean)


class Encoder(nn.Module):
    """Three levels (stride 1, 2, 4), each a conv, ReLU and residual blocks."""

    def __init__(self, in_chl: int = 3, nf: int = 64, n_blks: Sequence[int] = (4, 4, 4)):
        super().__init__()
        self.conv_L1 = nn.Conv2d(in_chl, nf, 3, 1, 1, bias=True)
        self.blk_L1 = _blocks(n_blks[0], nf)
        self.conv_L2 = nn.Conv2d(nf, nf, 3, 2, 1, bias=True)
        self.blk_L2 = _blocks(n_blks[1], nf)
        self.conv_L3 = nn.Conv2d(nf, nf, 3, 2, 1, bias=True)
        self.blk_L3 = _blocks(n_blks[2], nf)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> list[Tensor]:
        l1 = self.blk_L1(self.act(self.conv_L1(x)))
        l2 = self.blk_L2(self.act(self.conv_L2(l1)))
        l3 = self.blk_L3(self.act(self.conv_L3(l2)))
        return [l1, l2, l3]


class DRAM(nn.Module):
    """Dual residual aggregation of the LR features (half size) and the adapted reference."""

    def __init__(self, nf: int = 64):
        super().__init__()
        self.conv_down_a = nn.Conv2d(nf, nf, 3, 2, 1, bias=True)
        self.conv_up_a = nn.ConvTranspose2d(nf, nf, 3, 2, 1, 1, bias=True)
        self.conv_down_b = nn.Conv2d(nf, nf, 3, 2, 1, bias=True)
        self.conv_up_b = nn.ConvTranspose2d(nf, nf, 3, 2, 1, 1, bias=True)
        self.conv_cat = nn.Conv2d(nf * 2, nf, 3, 1, 1, bias=True)
        self.act = nn.ReLU(inplace=True)

    def forward(self, lr: Tensor, ref: Tensor) -> Tensor:
        out_a = self.act(self.conv_up_a(self.act(self.conv_down_a(ref)) - lr)) + ref
        out_b = self.act(self.conv_up_b((lr - self.act(self.conv_down_b(ref))) + lr))
        return self.act(self.conv_cat(torch.cat([out_a, out_b], dim=1)))


def _up2(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class Decoder(nn.Module):
    """LR pyramid (levels 3 → 1), then x1 / x2 / x4 stages fusing the transferred features."""

    def __init__(self, nf: int = 64, out_chl: int = 3, n_blks: Sequence[int] = (2, 2, 2, 12, 8, 4)):
        super().__init__()
        self.conv_L3 = nn.Conv2d(nf, nf, 3, 1, 1, bias=True)
        self.blk_L3 = _blocks(n_blks[0], nf)
        self.conv_L2 = nn.Conv2d(nf * 2, nf, 3, 1, 1, bias=True)
        self.blk_L2 = _blocks(n_blks[1], nf)
        self.conv_L1 = nn.Conv2d(nf * 2, nf, 3, 1, 1, bias=True)
        self.blk_L1 = _blocks(n_blks[2], nf)
        self.merge_warp_x1 = nn.Conv2d(nf * 2, nf, 3, 1, 1, bias=True)
        self.blk_x1 = _blocks(n_blks[3], nf)
        self.dram_x2 = DRAM(nf)
        self.blk_x2 = _blocks(n_blks[4], nf)
        self.dram_x4 = DRAM(nf)
        self.blk_x4 = _blocks(n_blks[5], 64)  # 64 in the released code, whatever nf
        self.conv_out = nn.Conv2d(64, out_chl, 3, 1, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.pAda = SAM(nf)

    def forward(self, lr_l: Sequence[Tensor], warp_ref_l: Sequence[Tensor],
                sam_out: list | None = None) -> Tensor:
        """``lr_l``: encoder levels 1-3 of the LR; ``warp_ref_l``: transferred features at x4, x2,
        x1. The three SAM outputs (x1, x2, x4) are appended to ``sam_out`` when given."""
        l3 = self.blk_L3(self.act(self.conv_L3(lr_l[2])))
        l2 = self.blk_L2(self.act(self.conv_L2(torch.cat([_up2(l3), lr_l[1]], dim=1))))
        l1 = self.blk_L1(self.act(self.conv_L1(torch.cat([_up2(l2), lr_l[0]], dim=1))))

        sam_x1 = self.pAda(l1, warp_ref_l[2])
        x1 = self.blk_x1(self.act(self.merge_warp_x1(torch.cat([sam_x1, l1], dim=1))))
        sam_x2 = self.pAda(_up2(x1), warp_ref_l[1])
        x2 = self.blk_x2(self.dram_x2(x1, sam_x2))
        sam_x4 = self.pAda(_up2(x2), warp_ref_l[0])
        x4 = self.blk_x4(self.dram_x4(x2, sam_x4))
        if sam_out is not None:
            sam_out.extend([sam_x1, sam_x2, sam_x4])
        return self.conv_out(x4)


# ----------------------------------------------------------------------------- the network


class MASA(nn.Module):
    """The released MASA network (nf 64, ×4, encoder 4/4/4, decoder 2/2/2/12/8/4 blocks).

    ``forward(lr, ref, ref_down)`` is the released ``net(LR_pad, Ref, Ref_down)``: BGR [0, 1]
    tensors, ``ref`` 4× ``ref_down``; returns the unclamped ×4 output. ``max_mb`` (attribute,
    or the keyword) bounds the streamed search and transfer. With ``keep_intermediates`` set,
    ``last_intermediates`` holds the released network's intermediate tensors (see
    :meth:`forward`); ``coarse_index`` / ``fine_index`` replace the searches' top-1 (to compare with
    the released outputs past a legitimate near-tie flip).
    """

    def __init__(self, in_chl: int = 3, nf: int = 64):
        super().__init__()
        self.scale = SCALE
        self.enc = Encoder(in_chl, nf, (4, 4, 4))
        self.decoder = Decoder(nf, in_chl, (2, 2, 2, 12, 8, 4))
        self.max_mb = DEFAULT_MAX_MB
        self.keep_intermediates = False
        self.last_intermediates: dict = {}
        self.weight_init()

    def weight_init(self, scale: float = 0.1) -> None:
        """The released initialisation: conv weights N(0, 0.5·sqrt(2 / (k·k·out))), biases 0;
        residual-block convs ×``scale``; SAM γ/β convs 0."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                fan = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                with torch.no_grad():
                    m.weight.normal_(0.0, 0.5 * math.sqrt(2.0 / fan))
                    if m.bias is not None:
                        m.bias.zero_()
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, ResidualBlock):
                    m.conv1.weight.mul_(scale)
                    m.conv2.weight.mul_(scale)
                if isinstance(m, SAM):
                    for conv in (m.conv_gamma, m.conv_beta):
                        conv.weight.zero_()
                        conv.bias.zero_()

    def super_resolve(self, lr: np.ndarray, refs: Sequence[np.ndarray], max_mb: float | None = None) -> np.ndarray:
        """:func:`super_resolve` (the pipeline's entry, ``SuperResolver`` with ``textures: released``:
        uint8 RGB LR and references → uint8 RGB ×4)."""
        return super_resolve(self, lr, refs, max_mb=max_mb)

    def forward(self, lr: Tensor, ref: Tensor, ref_down: Tensor, *, max_mb: float | None = None,
                coarse_index: Tensor | None = None, fine_index: Tensor | None = None) -> Tensor:
        """The released network call. ``last_intermediates`` (with ``keep_intermediates``):
        ``fea_lr``/``fea_reflr``/``fea_ref`` (encoder levels), ``lr_patches`` [N, P, C, k_y+2,
        k_x+2], ``coarse_corr``/``coarse_index`` [N, P, 1], ``window_y0``/``window_x0`` [N, P],
        ``window_hw``, ``fine_corr``/``fine_index`` [N·P, k_y, k_x, 1], ``warp_ref_x1/x2/x4``,
        ``sam_x1/x2/x4``, ``decoder_out``, ``lrsr``."""
        budget = float(self.max_mb if max_mb is None else max_mb) * 2**20
        _, _, h, w = lr.shape
        geo = geometry(h, w, ref_down.shape[-2], ref_down.shape[-1])
        lrsr = F.interpolate(lr, scale_factor=self.scale, mode="bicubic")
        fea_lr, fea_reflr, fea_ref = self.enc(lr), self.enc(ref_down), self.enc(ref)
        warp, keep = align(fea_lr, fea_reflr, fea_ref, geo, budget, coarse_index, fine_index)
        sam: list | None = [] if self.keep_intermediates else None
        dec = self.decoder(fea_lr, warp, sam)
        out = dec + lrsr
        if self.keep_intermediates:
            keep.update(fea_lr=fea_lr, fea_reflr=fea_reflr, fea_ref=fea_ref, warp_ref_x4=warp[0],
                        warp_ref_x2=warp[1], warp_ref_x1=warp[2], sam_x1=sam[0], sam_x2=sam[1], sam_x4=sam[2],
                        decoder_out=dec, lrsr=lrsr, geometry=geo)
            self.last_intermediates = keep
        else:
            self.last_intermediates = {}
        return out


# ----------------------------------------------------------------------------- images


def _pil_down(img: np.ndarray, factor: int = SCALE) -> np.ndarray:
    """PIL bicubic to ``(w // factor, h // factor)``, as the released loader resizes."""
    h, w = img.shape[:2]
    return np.asarray(Image.fromarray(img).resize((w // factor, h // factor), Image.Resampling.BICUBIC))


def _replicate(img: np.ndarray, t: int, d: int, left: int, r: int) -> np.ndarray:
    """``cv2.copyMakeBorder(..., BORDER_REPLICATE)``."""
    return np.pad(img, ((t, d), (left, r), (0, 0)), mode="edge")


def _centred(size: int, multiple: int, at_least: int = 0) -> tuple[int, int]:
    new = max(math.ceil(size / multiple) * multiple, at_least)
    return (new - size) // 2, (new - size) - (new - size) // 2


def _u8(img: np.ndarray, what: str) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise RefsrError(what, f"expected a uint8 RGB image (H, W, 3), got {img.dtype} {img.shape}")
    return img


def _tensor(img: np.ndarray, device) -> Tensor:
    """HWC uint8 → 1×3×H×W float32 in [0, 1] (the loader's ``astype(float32) / 255``)."""
    return (torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255.0).to(device)


def quantise(out: Tensor) -> np.ndarray:
    """1×3×H×W BGR output → RGB uint8 as the released ``save_image`` writes it:
    ``floor(255·clamp(x, 0, 1) + 0.5)``."""
    x = out[0].flip(0).clamp(0.0, 1.0).mul(255).add_(0.5).clamp_(0, 255)
    return x.permute(1, 2, 0).to("cpu", torch.uint8).numpy()


def prepare_refs(refs_bgr: Sequence[np.ndarray], multi: bool, side: int = MULTI_REF_SIDE,
                 at_least: int = 0) -> np.ndarray:
    """The reference the network sees: one reference padded bottom/right (replicate) to a multiple
    of 16 (``TestSet``); several (``multi``), each padded centred to ``side`` × ``side`` and stacked top
    to bottom (``TestSet_multi``), then padded bottom/right to a multiple of 16. ``at_least``: the
    smallest padded side (0 = as released)."""
    if multi:
        hs = max(side, *(r.shape[0] for r in refs_bgr))
        ws = max(side, *(r.shape[1] for r in refs_bgr))
        padded = []
        for r in refs_bgr:
            t, d = (hs - r.shape[0]) // 2, (hs - r.shape[0]) - (hs - r.shape[0]) // 2
            left, right = (ws - r.shape[1]) // 2, (ws - r.shape[1]) - (ws - r.shape[1]) // 2
            padded.append(_replicate(r, t, d, left, right))
        ref = np.concatenate(padded, axis=0)
    else:
        ref = refs_bgr[0]
    h, w = ref.shape[:2]
    hn = max(math.ceil(h / REF_MULTIPLE) * REF_MULTIPLE, at_least)
    wn = max(math.ceil(w / REF_MULTIPLE) * REF_MULTIPLE, at_least)
    return _replicate(ref, 0, hn - h, 0, wn - w) if (hn, wn) != (h, w) else ref


def released_test_inputs(hr: np.ndarray, refs: Sequence[np.ndarray], testset: str | None = None) -> dict:
    """What the released loader builds from RGB uint8 images (``TestSet`` for one reference,
    ``TestSet_multi`` for several, or as ``testset`` says): BGR uint8 arrays ``HR``, ``HR_pad``,
    ``LR``, ``LR_pad``, ``Ref``, ``Ref_down`` and ``pad_nums`` (t, d, l, r)."""
    testset = testset or ("TestSet" if len(refs) == 1 else "TestSet_multi")
    if testset not in ("TestSet", "TestSet_multi"):
        raise RefsrError("testset", f"expected TestSet or TestSet_multi, got {testset!r}")
    hr_bgr = _u8(hr, "HR")[:, :, ::-1]
    refs_bgr = [_u8(r, f"reference {i + 1}")[:, :, ::-1] for i, r in enumerate(refs)]
    if not refs_bgr:
        raise RefsrError("references", "MASA needs at least one reference image")
    multi = testset == "TestSet_multi"
    if multi:
        big = [i + 1 for i, r in enumerate(refs_bgr) if max(r.shape[:2]) > MULTI_REF_SIDE]
        if big:
            raise RefsrError(f"reference {big[0]}", f"larger than {MULTI_REF_SIDE} on a side: the released "
                                                    "TestSet_multi cannot pad it (super_resolve can)")
    h, w = hr_bgr.shape[:2]
    if h % HR_MULTIPLE or w % HR_MULTIPLE:
        (t, d), (left, r) = _centred(h, HR_MULTIPLE), _centred(w, HR_MULTIPLE)
    else:
        t = d = left = r = 0
    hr_pad = _replicate(hr_bgr, t, d, left, r) if (t, d, left, r) != (0, 0, 0, 0) else hr_bgr
    ref = prepare_refs(refs_bgr if multi else refs_bgr[:1], multi)
    return {"HR": np.ascontiguousarray(hr_bgr), "HR_pad": np.ascontiguousarray(hr_pad), "LR": _pil_down(
        np.ascontiguousarray(hr_bgr)), "LR_pad": _pil_down(np.ascontiguousarray(hr_pad)),
        "Ref": np.ascontiguousarray(ref), "Ref_down": _pil_down(np.ascontiguousarray(ref)),
        "pad_nums": (t, d, left, r)}


def _device(net: nn.Module):
    return next(net.parameters()).device


@torch.no_grad()
def released_test_path(net: MASA, hr: np.ndarray, refs: Sequence[np.ndarray], testset: str | None = None,
                       max_mb: float | None = None, **forced: Tensor) -> np.ndarray:
    """``test.py`` on one image: RGB uint8 HR and references in, the RGB uint8 image the released
    test writes out (HR size). The unclamped, cropped BGR output is left in ``net.last_output``;
    ``forced`` (``coarse_index``, ``fine_index``) goes to :meth:`MASA.forward`."""
    x = released_test_inputs(hr, refs, testset)
    dev = _device(net)
    out = net(_tensor(x["LR_pad"], dev), _tensor(x["Ref"], dev), _tensor(x["Ref_down"], dev), max_mb=max_mb,
              **forced)
    t, _, left, _ = x["pad_nums"]
    h, w = x["HR"].shape[:2]
    out = out[:, :, t:t + h, left:left + w]
    net.last_output = out
    return quantise(out)


@torch.no_grad()
def super_resolve(net: MASA, lr: np.ndarray, refs: Sequence[np.ndarray], max_mb: float | None = None) -> np.ndarray:
    """×4 SR of an RGB uint8 LR of any size (at least 1×1) with RGB uint8 references, as the released
    test path treats an image: BGR; the LR replicate-padded (centred) to a multiple of 8, at least
    16 a side; one reference padded bottom/right to a multiple of 16, several each padded centred to
    512×512 (or their largest side) and stacked; references at least 48 a side; the output cropped
    to 4× the LR and quantised as the released PNG."""
    lr_bgr = _u8(lr, "LR")[:, :, ::-1]
    refs_bgr = [_u8(r, f"reference {i + 1}")[:, :, ::-1] for i, r in enumerate(refs)]
    if not refs_bgr:
        raise RefsrError("references", "MASA needs at least one reference image")
    h, w = lr_bgr.shape[:2]
    (t, d), (left, r) = _centred(h, LR_BLOCK, MIN_LR_SIDE), _centred(w, LR_BLOCK, MIN_LR_SIDE)
    lr_pad = np.ascontiguousarray(_replicate(lr_bgr, t, d, left, r))
    ref = np.ascontiguousarray(prepare_refs(refs_bgr, len(refs_bgr) > 1, at_least=MIN_REF_SIDE))
    dev = _device(net)
    out = net(_tensor(lr_pad, dev), _tensor(ref, dev), _tensor(_pil_down(ref), dev), max_mb=max_mb)
    s = SCALE
    return quantise(out[:, :, t * s:(t + h) * s, left * s:(left + w) * s])

"""TTSR (Yang et al., "Learning Texture Transformer Network for Image Super-Resolution", CVPR
2020) as released (researchmm/TTSR, commit 550e4c9: ``model/LTE.py``, ``model/MainNet.py``,
``model/TTSR.py``, ``utils.py``'s ``MeanShift``), module for module and with the released
parameter names (``MainNet.*``, ``LTE.*``), so the released state dict loads unchanged
(:mod:`refsr.models.importers.ttsr_official`).

* **LTE** (learnable texture extractor): VGG19 ``features[0:12]`` (conv1_1 … relu3_1) in three
  slices (levels 1 / 2 / 3 = relu1_1 / relu2_1 / relu3_1), initialised from ImageNet weights
  (:meth:`LTE.load_imagenet`), trained with its own learning rate; input ``(x + 1) / 2``, then
  the fixed ``MeanShift`` (ImageNet mean / std).
* **Search and transfer**: :mod:`refsr.matching.relevance` (hard attention = argmax of the
  normalised inner product of 3x3 patches at level 3, soft attention ``S`` = its max), through
  refsr's streamed matching instead of the released full relevance matrix: the same indices and
  values (``tests/test_ttsr.py`` against the released code's outputs), memory bounded by
  ``max_mb``, any number of references.
* **MainNet**: shallow features (16 residual blocks), then three stages at ×1 / ×2 / ×4 with
  soft-attention-weighted texture fusion (``conv(cat(x, T)) * S`` added), cross-scale feature
  integration (CSFI2, CSFI3) and 16 / 8 / 4 residual blocks, a merge tail clamped to [-1, 1].
  Images are in [-1, 1]; upsampling is bicubic ``F.interpolate`` (``align_corners=False``).

The only deviation in the network is where the search runs (above); ``LTE_copy`` (the frozen
copy the released loss uses) is not a module here: the trainer evaluates the LTE with detached
weights (:meth:`TTSR.lte_frozen`), which is what copying the state dict before each use does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from refsr.core.errors import RefsrError
from refsr.features.vgg import IMAGENET_MEAN, IMAGENET_STD
from refsr.matching import relevance

#: LTE levels by the VGG19 layer they end at (the swap layers of :mod:`refsr.matching`).
LEVELS = ("relu1_1", "relu2_1", "relu3_1")
#: VGG19 ``features`` indices of each LTE slice (torchvision numbering, kept in the key names).
SLICES = {"slice1": range(0, 2), "slice2": range(2, 7), "slice3": range(7, 12)}
_VGG_CFG = {0: (3, 64), 2: (64, 64), 5: (64, 128), 7: (128, 128), 10: (128, 256)}


def conv1x1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, 1, 0, bias=True)


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=True)


def _up(x: Tensor, factor: int) -> Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bicubic")


class MeanShift(nn.Conv2d):
    """``utils.MeanShift``: a fixed 1x1 conv computing ``(x - mean) / std`` (its weights are part
    of the released state dict)."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        super().__init__(3, 3, kernel_size=1)
        std_t = torch.tensor(std)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1) / std_t.view(3, 1, 1, 1)
        self.bias.data = -torch.tensor(mean) / std_t
        self.requires_grad_(False)


class LTE(nn.Module):
    """Learnable texture extractor: ``x in [0, 1] -> (lv1, lv2, lv3)``."""

    def __init__(self):
        super().__init__()
        for name, idx in SLICES.items():
            seq = nn.Sequential()
            for i in idx:
                if i in _VGG_CFG:
                    seq.add_module(str(i), nn.Conv2d(*_VGG_CFG[i], kernel_size=3, padding=1))
                elif i in (4, 9):
                    seq.add_module(str(i), nn.MaxPool2d(2, 2))
                else:
                    seq.add_module(str(i), nn.ReLU(inplace=False))
            setattr(self, name, seq)
        self.sub_mean = MeanShift()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.sub_mean(x)
        lv1 = self.slice1(x)
        lv2 = self.slice2(lv1)
        return lv1, lv2, self.slice3(lv2)

    @torch.no_grad()
    def load_imagenet(self, weights: str | None = None) -> str:
        """Initialise the five convolutions from ImageNet VGG19 (:func:`refsr.features.vgg.load_vgg19`:
        a path, ``REFSR_VGG19_WEIGHTS``, or torchvision's download); returns the weights' source."""
        from refsr.features.vgg import load_vgg19

        vgg = load_vgg19(("relu3_1",), weights=weights)
        for name, idx in SLICES.items():
            for i in idx:
                if i in _VGG_CFG:
                    mine, theirs = getattr(self, name).get_submodule(str(i)), vgg.features[i]
                    mine.weight.copy_(theirs.weight)
                    mine.bias.copy_(theirs.bias)
        return vgg.weights_source


class ResBlock(nn.Module):
    def __init__(self, n_feats: int, res_scale: float = 1.0):
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = conv3x3(n_feats, n_feats)
        self.conv2 = conv3x3(n_feats, n_feats)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(F.relu(self.conv1(x))) * self.res_scale + x


def _blocks(n: int, n_feats: int, res_scale: float) -> nn.ModuleList:
    return nn.ModuleList(ResBlock(n_feats, res_scale) for _ in range(n))


def _run(blocks: nn.ModuleList, x: Tensor) -> Tensor:
    for block in blocks:
        x = block(x)
    return x


class SFE(nn.Module):
    """Shallow feature extraction: conv + ReLU, residual blocks, conv, long skip."""

    def __init__(self, n_blocks: int, n_feats: int, res_scale: float):
        super().__init__()
        self.conv_head = conv3x3(3, n_feats)
        self.RBs = _blocks(n_blocks, n_feats, res_scale)
        self.conv_tail = conv3x3(n_feats, n_feats)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.conv_head(x))
        return self.conv_tail(_run(self.RBs, x)) + x


class CSFI2(nn.Module):
    """Cross-scale feature integration of two scales."""

    def __init__(self, n_feats: int):
        super().__init__()
        self.conv12 = conv1x1(n_feats, n_feats)
        self.conv21 = conv3x3(n_feats, n_feats, 2)
        self.conv_merge1 = conv3x3(n_feats * 2, n_feats)
        self.conv_merge2 = conv3x3(n_feats * 2, n_feats)

    def forward(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        x12 = F.relu(self.conv12(_up(x1, 2)))
        x21 = F.relu(self.conv21(x2))
        return (F.relu(self.conv_merge1(torch.cat((x1, x21), 1))),
                F.relu(self.conv_merge2(torch.cat((x2, x12), 1))))


class CSFI3(nn.Module):
    """Cross-scale feature integration of three scales."""

    def __init__(self, n_feats: int):
        super().__init__()
        self.conv12 = conv1x1(n_feats, n_feats)
        self.conv13 = conv1x1(n_feats, n_feats)
        self.conv21 = conv3x3(n_feats, n_feats, 2)
        self.conv23 = conv1x1(n_feats, n_feats)
        self.conv31_1 = conv3x3(n_feats, n_feats, 2)
        self.conv31_2 = conv3x3(n_feats, n_feats, 2)
        self.conv32 = conv3x3(n_feats, n_feats, 2)
        self.conv_merge1 = conv3x3(n_feats * 3, n_feats)
        self.conv_merge2 = conv3x3(n_feats * 3, n_feats)
        self.conv_merge3 = conv3x3(n_feats * 3, n_feats)

    def forward(self, x1: Tensor, x2: Tensor, x3: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x12 = F.relu(self.conv12(_up(x1, 2)))
        x13 = F.relu(self.conv13(_up(x1, 4)))
        x21 = F.relu(self.conv21(x2))
        x23 = F.relu(self.conv23(_up(x2, 2)))
        x31 = F.relu(self.conv31_2(F.relu(self.conv31_1(x3))))
        x32 = F.relu(self.conv32(x3))
        return (F.relu(self.conv_merge1(torch.cat((x1, x21, x31), 1))),
                F.relu(self.conv_merge2(torch.cat((x2, x12, x32), 1))),
                F.relu(self.conv_merge3(torch.cat((x3, x13, x23), 1))))


class MergeTail(nn.Module):
    def __init__(self, n_feats: int):
        super().__init__()
        self.conv13 = conv1x1(n_feats, n_feats)
        self.conv23 = conv1x1(n_feats, n_feats)
        self.conv_merge = conv3x3(n_feats * 3, n_feats)
        self.conv_tail1 = conv3x3(n_feats, n_feats // 2)
        self.conv_tail2 = conv1x1(n_feats // 2, 3)

    def forward(self, x1: Tensor, x2: Tensor, x3: Tensor) -> Tensor:
        x13 = F.relu(self.conv13(_up(x1, 4)))
        x23 = F.relu(self.conv23(_up(x2, 2)))
        x = F.relu(self.conv_merge(torch.cat((x3, x13, x23), 1)))
        return torch.clamp(self.conv_tail2(self.conv_tail1(x)), -1, 1)


class MainNet(nn.Module):
    """The released main network: ``(lr, S, T_lv3, T_lv2, T_lv1) -> sr``, all in [-1, 1]."""

    def __init__(self, n_blocks: Sequence[int], n_feats: int, res_scale: float):
        super().__init__()
        b = list(n_blocks)
        self.SFE = SFE(b[0], n_feats, res_scale)
        self.conv11_head = conv3x3(256 + n_feats, n_feats)
        self.RB11 = _blocks(b[1], n_feats, res_scale)
        self.conv11_tail = conv3x3(n_feats, n_feats)
        self.conv12 = conv3x3(n_feats, n_feats * 4)
        self.ps12 = nn.PixelShuffle(2)
        self.conv22_head = conv3x3(128 + n_feats, n_feats)
        self.ex12 = CSFI2(n_feats)
        self.RB21 = _blocks(b[2], n_feats, res_scale)
        self.RB22 = _blocks(b[2], n_feats, res_scale)
        self.conv21_tail = conv3x3(n_feats, n_feats)
        self.conv22_tail = conv3x3(n_feats, n_feats)
        self.conv23 = conv3x3(n_feats, n_feats * 4)
        self.ps23 = nn.PixelShuffle(2)
        self.conv33_head = conv3x3(64 + n_feats, n_feats)
        self.ex123 = CSFI3(n_feats)
        self.RB31 = _blocks(b[3], n_feats, res_scale)
        self.RB32 = _blocks(b[3], n_feats, res_scale)
        self.RB33 = _blocks(b[3], n_feats, res_scale)
        self.conv31_tail = conv3x3(n_feats, n_feats)
        self.conv32_tail = conv3x3(n_feats, n_feats)
        self.conv33_tail = conv3x3(n_feats, n_feats)
        self.merge_tail = MergeTail(n_feats)

    def forward(self, x: Tensor, S: Tensor, T_lv3: Tensor, T_lv2: Tensor, T_lv1: Tensor) -> Tensor:
        x11 = self.SFE(x)
        x11 = x11 + self.conv11_head(torch.cat((x11, T_lv3), 1)) * S
        x11 = x11 + self.conv11_tail(_run(self.RB11, x11))

        x21 = x11
        x22 = F.relu(self.ps12(self.conv12(x11)))
        x22 = x22 + self.conv22_head(torch.cat((x22, T_lv2), 1)) * _up(S, 2)
        x21_res, x22_res = self.ex12(x21, x22)
        x21 = x21 + self.conv21_tail(_run(self.RB21, x21_res))
        x22 = x22 + self.conv22_tail(_run(self.RB22, x22_res))

        x31, x32 = x21, x22
        x33 = F.relu(self.ps23(self.conv23(x22)))
        x33 = x33 + self.conv33_head(torch.cat((x33, T_lv1), 1)) * _up(S, 4)
        x31_res, x32_res, x33_res = self.ex123(x31, x32, x33)
        x31 = x31 + self.conv31_tail(_run(self.RB31, x31_res))
        x32 = x32 + self.conv32_tail(_run(self.RB32, x32_res))
        x33 = x33 + self.conv33_tail(_run(self.RB33, x33_res))
        return self.merge_tail(x31, x32, x33)


def _blocks_of(n_blocks) -> tuple[int, int, int, int]:
    if isinstance(n_blocks, str):  # the released option's spelling, "16+16+8+4"
        n_blocks = n_blocks.split("+")
    blocks = tuple(int(b) for b in n_blocks)
    if len(blocks) != 4 or min(blocks) < 1:
        raise ValueError(f"n_blocks needs 4 positive counts (SFE, stages 1, 2, 3), got {n_blocks!r}")
    return blocks  # type: ignore[return-value]


class TTSR(nn.Module):
    """The released TTSR: ``forward(lr, lrsr, ref, refsr) -> (sr, S, T_lv3, T_lv2, T_lv1)``.

    ``lr``: ``B x 3 x h x w``; ``lrsr`` its ×4 bicubic; ``ref`` / ``refsr`` a reference (sides
    multiples of 4) and its ×4 down-up; all in [-1, 1], one reference per sample (training).
    :meth:`textures` takes several references per image (inference). ``max_mb``, ``match_mode``
    and ``approx`` bound and choose the search (:mod:`refsr.matching.relevance`).
    """

    def __init__(self, n_blocks: Sequence[int] | str = (16, 16, 8, 4), n_feats: int = 64,
                 res_scale: float = 1.0):
        super().__init__()
        self.n_blocks = _blocks_of(n_blocks)
        self.MainNet = MainNet(self.n_blocks, int(n_feats), float(res_scale))
        self.LTE = LTE()
        self.max_mb, self.match_mode, self.approx = 256.0, "exact", None

    def lte(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """LTE levels of an image in [-1, 1]."""
        return self.LTE((x + 1.0) / 2.0)

    def lte_frozen(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The LTE with detached weights (the released ``LTE_copy``): gradients reach ``x`` only."""
        params = {k: v.detach() for k, v in self.LTE.named_parameters()}
        return functional_call(self.LTE, params, ((x + 1.0) / 2.0,))

    def forward(self, lr: Tensor, lrsr: Tensor, ref: Tensor, refsr: Tensor):
        _, _, lrsr_lv3 = self.lte(lrsr.detach())
        _, _, refsr_lv3 = self.lte(refsr.detach())
        ref_lv1, ref_lv2, ref_lv3 = self.lte(ref.detach())
        corrs = [relevance.search(lrsr_lv3[b].detach(), [refsr_lv3[b].detach()], self.max_mb,
                                  self.match_mode, self.approx) for b in range(lr.shape[0])]
        S = relevance.soft_attention(lrsr_lv3, refsr_lv3, corrs)
        T = relevance.transfer_batch(corrs, {"relu1_1": ref_lv1, "relu2_1": ref_lv2, "relu3_1": ref_lv3},
                                     self.max_mb, differentiable=torch.is_grad_enabled())
        T_lv3, T_lv2, T_lv1 = T["relu3_1"], T["relu2_1"], T["relu1_1"]
        return self.MainNet(lr, S, T_lv3, T_lv2, T_lv1), S, T_lv3, T_lv2, T_lv1

    @torch.no_grad()
    def textures(self, lrsr: Tensor, refs: list[Tensor], refs_sr: list[Tensor]) -> dict[str, Tensor]:
        """``S`` and ``T`` of one image (``1 x 3 x H x W`` in [-1, 1]) against any number of
        references, as ``{"S", "relu3_1", "relu2_1", "relu1_1"}`` maps (LR, LR, ×2, ×4 size)."""
        if not refs:
            raise RefsrError("--ref", "TTSR needs at least one reference image")
        _, _, content = self.lte(lrsr)
        cands = [self.lte(r)[2][0] for r in refs_sr]
        corr = relevance.search(content[0], cands, self.max_mb, self.match_mode, self.approx)
        levels = []
        for r in refs:
            lv1, lv2, lv3 = self.lte(r)
            levels.append({"relu1_1": lv1[0], "relu2_1": lv2[0], "relu3_1": lv3[0]})
        out = relevance.transfer(corr, levels, self.max_mb)
        out["S"] = corr.cosine[None, None].to(content.dtype)
        self.last_correspondence = corr
        return out

    def run_main(self, lr: Tensor, maps: dict[str, Tensor]) -> Tensor:
        """MainNet on ``lr`` with :meth:`textures`' maps (cropped to a tile, possibly)."""
        return self.MainNet(lr, maps["S"], maps["relu3_1"], maps["relu2_1"], maps["relu1_1"])


class TTSRResidual(TTSR):
    """Recipe ``refsr``'s TTSR: the released network (same modules, parameter names, search and
    transfer) predicting a residual over the bicubic ×4 upsampling of its LR input.

    ``sr = bicubic(lr) + MainNet(lr, S, T)``, where ``bicubic`` is ``F.interpolate`` (the
    base SRResNet and SRNTT of recipe ``refsr`` use, :func:`refsr.models.srresnet.bicubic_x4`,
    so the base of a tile is the tile's own); the last convolution of the merge tail starts at
    zero, so an untrained network returns the bicubic image. The released network has no skip
    (its merge tail's output, clamped to [-1, 1], is the image); here that clamp bounds the
    residual and the sum is not clamped (outputs are rounded to 8 bits when written). Everything
    else is :class:`TTSR`.
    """

    def __init__(self, n_blocks: Sequence[int] | str = (16, 16, 8, 4), n_feats: int = 64,
                 res_scale: float = 1.0):
        super().__init__(n_blocks, n_feats, res_scale)
        nn.init.zeros_(self.MainNet.merge_tail.conv_tail2.weight)
        nn.init.zeros_(self.MainNet.merge_tail.conv_tail2.bias)

    @staticmethod
    def base(lr: Tensor) -> Tensor:
        """The bicubic ×4 upsampling the network adds its output to."""
        return _up(lr, 4)

    def forward(self, lr: Tensor, lrsr: Tensor, ref: Tensor, refsr: Tensor):
        sr, S, T_lv3, T_lv2, T_lv1 = super().forward(lr, lrsr, ref, refsr)
        return sr + self.base(lr), S, T_lv3, T_lv2, T_lv1

    def run_main(self, lr: Tensor, maps: dict[str, Tensor]) -> Tensor:
        return super().run_main(lr, maps) + self.base(lr)


class TTSRCritic(nn.Module):
    """The released critic (``loss/discriminator.py``): five [3x3 conv s1, 3x3 conv s2] pairs,
    32 → 512 channels, LeakyReLU 0.2, no normalisation, then dense 1024 and dense 1 on the
    flattened ``in_size/32 x in_size/32 x 512`` map (so it takes one HR size, ``in_size``: a
    side, as released, or ``(height, width)``)."""

    def __init__(self, in_size: int | tuple[int, int] = 160):
        super().__init__()
        h, w = (in_size, in_size) if isinstance(in_size, int) else (int(in_size[0]), int(in_size[1]))
        if min(h, w) < 32:
            raise RefsrError("ttsr critic", f"needs HR training images of at least 32 px, got {w}x{h}")
        chans = [3, 32, 32, 64, 64, 128, 128, 256, 256, 512, 512]
        for i in range(10):
            setattr(self, f"conv{i + 1}", conv3x3(chans[i], chans[i + 1], 1 if i % 2 == 0 else 2))
        self.fc1 = nn.Linear(-(-h // 32) * -(-w // 32) * 512, 1024)
        self.fc2 = nn.Linear(1024, 1)

    def forward(self, x: Tensor) -> Tensor:
        for i in range(10):
            x = F.leaky_relu(getattr(self, f"conv{i + 1}")(x), 0.2)
        return self.fc2(F.leaky_relu(self.fc1(x.flatten(1)), 0.2))

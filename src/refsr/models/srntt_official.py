"""SRResNet and SRNTT as released (recipe ``official``): ZZUTK/SRNTT, ``SRNTT/model.py``.

The graph of ``SRNTT.model`` point by point, in PyTorch (NCHW):

* **Content extractor** (``content_extractor/n64s1``): conv 3x3 (bias) → ReLU → ``n_blocks``
  residual blocks [conv 3x3 (no bias) → BN → ReLU → conv 3x3 (no bias) → BN, + identity] →
  conv 3x3 (no bias) → BN, + the head's output. The released code hard-codes 16 blocks; here
  ``n_blocks`` (16 in ``configs/cufed5.yaml``).
* **SRResNet** (``net_upscale``): the content extractor, two [conv 3x3 to 4·n_feats (bias) →
  pixel shuffle x2 → ReLU], a 1x1 conv to RGB (bias) → tanh.
* **SRNTT** (``net_srntt``): three texture-transfer stages on the content features ψ:
  ``small`` (x1, with M at relu3_1), ``medium`` (x2, relu2_1), ``large`` (x4, relu1_1). A stage
  is concat(x, M) → conv 3x3 (bias) → ReLU → residual blocks (as above) → conv 3x3 (no bias) →
  BN, + x (the stage's input); ``small`` and ``medium`` then upscale [conv 3x3 to 4·n_feats
  (bias) → pixel shuffle x2 → ReLU]; ``large`` ends with conv 3x3 to n_feats/2 (bias, no
  activation: 32 channels in the released graph) → 1x1 conv to RGB (bias) → tanh. Its
  ``n_blocks_transfer`` are the released ``num_res_blocks``, ``/2``, ``/4`` (16, 8, 4).
* Batch norm as TensorLayer's ``BatchNormLayer``: ε = 1e-5, moving averages with decay 0.9
  (PyTorch momentum 0.1); batch statistics in training, moving averages in inference.
* Images in [-1, 1] (:meth:`raw`), as the released code feeds ``uint8 / 127.5 - 1`` and writes
  ``(out + 1) * 127.5``; :meth:`forward` is the pipeline's interface, RGB in [0, 1] both ways,
  which is the same map (``2x - 1`` in, ``(y + 1) / 2`` out).
* Initialisation as released (:func:`released_init`): conv weights N(0, 0.02), biases 0, BN
  gamma N(1, 0.02), beta 0, moving mean 0, moving variance 1.
* What trains (``var_g`` of the released ``train``): only the texture transfer; the content
  extractor, loaded from the SISR model, is frozen (:meth:`SRNTTOfficial.freeze_content_extractor`).
  The released training graph runs it with ``is_train=True``, so its batch norms normalise
  with batch statistics during training; they do not move its stored averages here (the
  released code never saves the content extractor again: its test loads ``upscale.npz``).

Deviations (also in the docs, docs/methods/srntt.md):

* Upscaling uses PyTorch's ``pixel_shuffle`` (output channel ``c·4 + i·2 + j``) where the
  released graph uses TensorFlow's ``depth_to_space`` (``(i·2 + j)·C + c``); the importer
  (:mod:`refsr.models.importers.srntt_official`) permutes the preceding convolution's output
  channels, so the function computed is the same.
* PyTorch updates the moving variance with the unbiased batch variance, TensorFlow with the
  biased one: a factor n/(n - 1) with n = N·H·W (>= 12,800 at the paper's sizes).
* The weight-map variant of the network itself (``concat=True``: learned ``a``, ``b`` per
  stage) is not built: the released training and test never enable it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from refsr.core.errors import RefsrError
from refsr.models.srntt import MAP_CHANNELS, TRANSFER_LAYERS, check_maps, transfer_blocks

SCALE = 4
#: TensorLayer ``BatchNormLayer`` defaults of the released code.
BN_EPS = 1e-5
BN_DECAY = 0.9
#: The released initialisers: ``tf.random_normal_initializer(stddev=0.02)`` (weights) and
#: ``tf.random_normal_initializer(1., 0.02)`` (BN gamma).
INIT_STD = 0.02
EXTRACTOR_PREFIX = "extractor."
#: The three texture-transfer stages, named as in the released graph, and the swapped map
#: each one takes.
STAGES = dict(zip(("small", "medium", "large"), TRANSFER_LAYERS, strict=True))


def conv(c_in: int, c_out: int, k: int = 3, bias: bool = True) -> nn.Conv2d:
    """A stride-1 convolution with TensorFlow's ``'SAME'`` padding (odd ``k``: symmetric)."""
    return nn.Conv2d(c_in, c_out, k, 1, k // 2, bias=bias)


def batch_norm(c: int) -> nn.BatchNorm2d:
    """TensorLayer's ``BatchNormLayer``: ε 1e-5, moving averages with decay 0.9."""
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=1.0 - BN_DECAY)


def released_init(module: nn.Module) -> None:
    """The released initialisers, from the global RNG: conv weights N(0, 0.02), biases 0, BN
    gamma N(1, 0.02), beta 0, moving mean 0, moving variance 1."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, INIT_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, INIT_STD)
            nn.init.zeros_(m.bias)
            m.reset_running_stats()


class BNResidualBlock(nn.Module):
    """conv (no bias) → BN → ReLU → conv (no bias) → BN, plus the identity."""

    def __init__(self, n_feats: int):
        super().__init__()
        self.conv1 = conv(n_feats, n_feats, bias=False)
        self.bn1 = batch_norm(n_feats)
        self.conv2 = conv(n_feats, n_feats, bias=False)
        self.bn2 = batch_norm(n_feats)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))


class Upscale2(nn.Module):
    """conv 3x3 to 4·n_feats (bias) → pixel shuffle x2 → ReLU (the released ``SubpixelConv2d``)."""

    def __init__(self, n_feats: int):
        super().__init__()
        self.conv = conv(n_feats, 4 * n_feats)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(F.pixel_shuffle(self.conv(x), 2))


class ContentExtractorOfficial(nn.Module):
    """``content_extractor/n64s1``: head conv + ReLU → BN residual blocks → conv → BN, + head."""

    def __init__(self, n_blocks: int = 16, n_feats: int = 64):
        super().__init__()
        self.head = conv(3, n_feats)
        self.blocks = nn.Sequential(*(BNResidualBlock(n_feats) for _ in range(n_blocks)))
        self.conv = conv(n_feats, n_feats, bias=False)
        self.bn = batch_norm(n_feats)

    def forward(self, x: Tensor) -> Tensor:
        head = F.relu(self.head(x))
        return head + self.bn(self.conv(self.blocks(head)))


def _check_scale(scale: int) -> None:
    if scale != SCALE:
        raise ValueError(f"the released SRNTT supports scale {SCALE} only, got {scale}")


class SRResNetOfficial(nn.Module):
    """The released ``net_upscale``: content extractor → 2 x [conv, shuffle x2, ReLU] → 1x1 → tanh."""

    def __init__(self, n_blocks: int = 16, n_feats: int = 64, scale: int = SCALE):
        super().__init__()
        _check_scale(scale)
        self.extractor = ContentExtractorOfficial(n_blocks, n_feats)
        self.up1 = Upscale2(n_feats)
        self.up2 = Upscale2(n_feats)
        self.out = conv(n_feats, 3, k=1)
        released_init(self)

    def raw(self, x: Tensor) -> Tensor:
        """The released graph: LR in [-1, 1] → SR in [-1, 1] (tanh)."""
        return torch.tanh(self.out(self.up2(self.up1(self.extractor(x)))))

    def features(self, lr: Tensor) -> Tensor:
        """Content features ψ of an LR image in [0, 1]."""
        return self.extractor(2 * lr - 1)

    def forward(self, lr: Tensor) -> Tensor:
        return (self.raw(2 * lr - 1) + 1) / 2


class TransferStage(nn.Module):
    """concat(x, M) → conv (bias) → ReLU → BN residual blocks → conv (no bias) → BN, + x."""

    def __init__(self, n_feats: int, map_channels: int, n_blocks: int):
        super().__init__()
        self.conv1 = conv(n_feats + map_channels, n_feats)
        self.blocks = nn.Sequential(*(BNResidualBlock(n_feats) for _ in range(n_blocks)))
        self.conv2 = conv(n_feats, n_feats, bias=False)
        self.bn2 = batch_norm(n_feats)

    def forward(self, x: Tensor, swapped: Tensor) -> Tensor:
        y = F.relu(self.conv1(torch.cat([x, swapped], dim=1)))
        return x + self.bn2(self.conv2(self.blocks(y)))


class SRNTTOfficial(nn.Module):
    """The released ``net_srntt`` (texture transfer) on the released content extractor.

    ``forward(lr, maps) -> sr`` with the pipeline's conventions (RGB in [0, 1]; ``maps`` the
    swapped VGG19 maps at relu3_1, relu2_1, relu1_1 as :func:`refsr.models.srntt.check_maps`
    describes, in the units of the VGG19 the recipe uses). :meth:`raw` is the released graph
    on [-1, 1] images.
    """

    def __init__(self, n_blocks: int = 16, n_feats: int = 64,
                 n_blocks_transfer: int | Sequence[int] = (16, 8, 4), scale: int = SCALE):
        super().__init__()
        _check_scale(scale)
        if n_feats % 2:
            raise ValueError(f"n_feats must be even (the last stage ends with n_feats/2 channels), got {n_feats}")
        blocks = transfer_blocks(n_blocks_transfer)
        self.extractor = ContentExtractorOfficial(n_blocks, n_feats)
        self.small = TransferStage(n_feats, MAP_CHANNELS[STAGES["small"]], blocks[0])
        self.small_up = Upscale2(n_feats)
        self.medium = TransferStage(n_feats, MAP_CHANNELS[STAGES["medium"]], blocks[1])
        self.medium_up = Upscale2(n_feats)
        self.large = TransferStage(n_feats, MAP_CHANNELS[STAGES["large"]], blocks[2])
        self.large_conv3 = conv(n_feats, n_feats // 2)
        self.out = conv(n_feats // 2, 3, k=1)
        released_init(self)

    def raw(self, x: Tensor, maps: Mapping[str, Tensor]) -> Tensor:
        """The released graph: LR in [-1, 1] and the swapped maps → SR in [-1, 1] (tanh)."""
        check_maps(x, maps)
        y = self.small_up(self.small(self.extractor(x), maps[STAGES["small"]]))
        y = self.medium_up(self.medium(y, maps[STAGES["medium"]]))
        y = self.large(y, maps[STAGES["large"]])
        return torch.tanh(self.out(self.large_conv3(y)))

    def features(self, lr: Tensor) -> Tensor:
        """Content features ψ of an LR image in [0, 1]."""
        return self.extractor(2 * lr - 1)

    def forward(self, lr: Tensor, maps: Mapping[str, Tensor]) -> Tensor:
        return (self.raw(2 * lr - 1, maps) + 1) / 2

    def transfer_parameters(self) -> list[nn.Parameter]:
        """What the released training optimises (``var_g``: the ``texture_transfer`` scope)."""
        return [p for name, p in self.named_parameters() if not name.startswith(EXTRACTOR_PREFIX)]

    def freeze_content_extractor(self) -> None:
        """Freeze the content extractor as the released training does: no gradient, and its
        batch norms, which normalise with batch statistics in training mode (``is_train=True``
        in the released graph), keep their stored moving averages (momentum 0)."""
        self.extractor.requires_grad_(False)
        for m in self.extractor.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.0

    def load_content_extractor(self, state_dict: Mapping[str, Tensor],
                               source: str = "SRResNet state dict") -> None:
        """Copy ``extractor.*`` (weights and batch-norm statistics) from an official SRResNet
        or SRNTT state dict; a one-line :class:`RefsrError` naming ``source`` otherwise."""
        own = self.extractor.state_dict()
        theirs = {k[len(EXTRACTOR_PREFIX):]: v for k, v in state_dict.items()
                  if k.startswith(EXTRACTOR_PREFIX)}
        missing, extra = sorted(set(own) - set(theirs)), sorted(set(theirs) - set(own))
        if missing or extra:
            raise RefsrError(source, f"content extractor does not match the official recipe's: "
                                     f"{len(missing)} missing weight(s) (e.g. {missing[:1]}), "
                                     f"{len(extra)} unexpected (e.g. {extra[:1]}); was the SISR model "
                                     "trained with another recipe or other n_blocks?")
        for k, v in own.items():
            if tuple(theirs[k].shape) != tuple(v.shape):
                raise RefsrError(source, f"content extractor weight {k} has shape {tuple(theirs[k].shape)}, "
                                         f"expected {tuple(v.shape)}; was the SISR model trained with other n_feats?")
        self.extractor.load_state_dict(theirs)


__all__ = [
    "BN_EPS",
    "STAGES",
    "BNResidualBlock",
    "ContentExtractorOfficial",
    "SRNTTOfficial",
    "SRResNetOfficial",
    "TransferStage",
    "Upscale2",
    "released_init",
]

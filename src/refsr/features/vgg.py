"""Frozen VGG19 feature extractor (relu1_1 ... relu5_1) with explicit weight provenance.

Weights are resolved in this order:

1. the environment variable ``REFSR_VGG19_WEIGHTS`` (a path to a state dict);
2. the ``weights`` argument of :func:`load_vgg19` (a path);
3. torchvision's ``VGG19_Weights.IMAGENET1K_V1`` (normal download / cache).

A state dict may use torchvision's full-model keys (``features.N.weight``), the
features-only keys (``N.weight``), and may be partial (e.g. only conv1_1..conv3_1):
it is accepted when it covers every convolution up to the deepest requested layer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from refsr.core.errors import RefsrError

ENV_VAR = "REFSR_VGG19_WEIGHTS"
TORCHVISION_SOURCE = "torchvision:IMAGENET1K_V1"

#: torchvision ``vgg19().features`` index of each supported ReLU output.
LAYERS = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu5_1": 29}
#: Channels of each layer, and its stride: image pixels per feature position.
CHANNELS = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512, "relu5_1": 512}
STRIDE = {"relu1_1": 1, "relu2_1": 2, "relu3_1": 4, "relu4_1": 8, "relu5_1": 16}

# VGG19 configuration "E": output channels per conv, "M" = 2x2 max-pool.
_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
        512, 512, 512, 512, "M"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_CACHE: dict[tuple, VGGFeatures] = {}


def _conv_table() -> list[tuple[int, str, int, int]]:
    """``(features index, name, in_channels, out_channels)`` for the 16 VGG19 convolutions."""
    table, index, in_ch, block, k = [], 0, 3, 1, 1
    for item in _CFG:
        if item == "M":
            index += 1
            block, k = block + 1, 1
            continue
        table.append((index, f"conv{block}_{k}", in_ch, item))
        index += 2  # conv + relu
        in_ch, k = item, k + 1
    return table


CONVS = _conv_table()


def _build_features(last_index: int) -> nn.Sequential:
    """torchvision's ``vgg19().features[: last_index + 1]`` (same module indices), uninitialised."""
    modules: list[nn.Module] = []
    for item in _CFG:
        if item == "M":
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            in_ch = next(c[2] for c in CONVS if c[0] == len(modules))
            modules.append(nn.Conv2d(in_ch, item, kernel_size=3, padding=1))
            modules.append(nn.ReLU(inplace=False))
    return nn.Sequential(*modules[: last_index + 1])


def _check_layers(layers: Iterable[str]) -> tuple[str, ...]:
    """Validate layer names; return them unique, ordered by depth."""
    layers = tuple(layers)
    unknown = [name for name in layers if name not in LAYERS]
    if unknown or not layers:
        raise RefsrError("layers", f"unknown or empty VGG19 layer list {list(layers)}; "
                                   f"choose from {', '.join(LAYERS)}")
    return tuple(sorted(set(layers), key=LAYERS.__getitem__))


class VGGFeatures(nn.Module):
    """VGG19 ``features`` truncated at the deepest requested layer; frozen, eval mode.

    Input: RGB in ``[0, 1]``, ``N x 3 x H x W`` (ImageNet normalisation is applied here).
    Output: ``{layer: N x C x h x w}`` for the requested layers, shallowest first.
    """

    def __init__(self, layers: Iterable[str] = ("relu1_1", "relu2_1", "relu3_1"),
                 weights_source: str = "uninitialised"):
        super().__init__()
        self.layers = _check_layers(layers)
        self.features = _build_features(LAYERS[self.layers[-1]])
        self.weights_source = weights_source
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatures:
        """Always stay in eval mode (there is no dropout/batch-norm, but be explicit)."""
        return super().train(False)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"VGGFeatures expects N x 3 x H x W, got {tuple(x.shape)}")
        x = (x - self.mean) / self.std
        wanted = {LAYERS[name]: name for name in self.layers}
        out: dict[str, Tensor] = {}
        for index, module in enumerate(self.features):
            x = module(x)
            if index in wanted:
                out[wanted[index]] = x
        return out


def _span(convs: list[tuple[int, str, int, int]]) -> str:
    """``conv4_1..conv5_1 (features.19..28)`` for a contiguous run of convs."""
    if len(convs) == 1:
        return f"{convs[0][1]} (features.{convs[0][0]})"
    return f"{convs[0][1]}..{convs[-1][1]} (features.{convs[0][0]}..{convs[-1][0]})"


def _describe_missing(missing: list[tuple[int, str, int, int]]) -> str:
    """Group missing convs into contiguous runs and describe them."""
    runs: list[list] = []
    for conv in missing:
        pos = CONVS.index(conv)
        if runs and CONVS.index(runs[-1][-1]) == pos - 1:
            runs[-1].append(conv)
        else:
            runs.append([conv])
    return ", ".join(_span(run) for run in runs)


def _normalise_keys(state: Mapping, where: str) -> dict[str, Tensor]:
    """Map ``features.N.x`` / ``N.x`` keys to ``N.x``; drop classifier keys."""
    if not isinstance(state, Mapping):
        raise RefsrError(where, f"is not a state dict (got {type(state).__name__})")
    out = {}
    for key, value in state.items():
        key = str(key)
        if key.startswith("module."):
            key = key[len("module."):]
        if key.startswith("classifier."):
            continue
        if key.startswith("features."):
            key = key[len("features."):]
        if not isinstance(value, Tensor):
            raise RefsrError(where, f"entry {key!r} is not a tensor")
        out[key] = value
    return out


def _apply_state(model: VGGFeatures, state: Mapping, where: str) -> None:
    """Load the convs ``model`` needs from ``state``; explain clearly what is missing."""
    state = _normalise_keys(state, where)
    deepest = model.layers[-1]
    needed = [c for c in CONVS if c[0] < LAYERS[deepest]]
    missing = [c for c in needed
               if f"{c[0]}.weight" not in state or f"{c[0]}.bias" not in state]
    if missing:
        raise RefsrError(where, f"{deepest} needs {_describe_missing(missing)} "
                                f"which this file lacks")
    wanted = {k: v for k, v in state.items()
              if k.split(".")[0].isdigit() and int(k.split(".")[0]) < LAYERS[deepest]}
    own = model.features.state_dict()
    for key, value in wanted.items():
        if key in own and own[key].shape != value.shape:
            raise RefsrError(where, f"{key} has shape {tuple(value.shape)}, "
                                    f"VGG19 expects {tuple(own[key].shape)}")
    model.features.load_state_dict({k: v for k, v in wanted.items() if k in own}, strict=True)


def _read_state(path: str, origin: str) -> dict:
    """``torch.load`` a local state dict, turning every failure into a one-line RefsrError."""
    if not Path(path).is_file():
        raise RefsrError(path, f"VGG19 weights file not found ({origin})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and I/O errors all mean "unreadable"
        raise RefsrError(path, f"cannot read VGG19 weights ({origin}): "
                               f"{type(err).__name__}: {_first_line(err)}") from None


def _first_line(err: Exception, limit: int = 200) -> str:
    """The first non-empty line of an exception message, shortened."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[0] if lines else "no details"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _download_state() -> dict:
    """torchvision's IMAGENET1K_V1 weights via the normal torch hub download/cache."""
    from torchvision.models import VGG19_Weights

    url = VGG19_Weights.IMAGENET1K_V1.url
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False)
    except Exception as err:
        from refsr.features.weights import OFFLINE_HINT

        raise RefsrError(TORCHVISION_SOURCE, f"the VGG19 weights are not in the torch hub cache and "
                                             f"could not be downloaded from {url} "
                                             f"({type(err).__name__}: {_first_line(err)}); "
                                             f"{OFFLINE_HINT}, or set {ENV_VAR} to a local "
                                             f"state dict") from None


def resolve_source(weights: str | os.PathLike | None = None) -> tuple[str, str]:
    """Return ``(source, origin)``: a path or ``TORCHVISION_SOURCE``, and where it came from."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return env, f"from {ENV_VAR}"
    if weights is not None and str(weights).strip():
        return str(weights), "from the weights argument"
    return TORCHVISION_SOURCE, "torchvision download/cache"


def load_vgg19(layers: Iterable[str] = ("relu1_1", "relu2_1", "relu3_1"),
               weights: str | os.PathLike | None = None,
               device: str | torch.device = "cpu") -> VGGFeatures:
    """A frozen :class:`VGGFeatures` with pretrained weights (see module docstring for order).

    Models are cached per (layers, source, device); the returned module is shared, so do
    not modify it. ``model.weights_source`` records the path or ``"torchvision:IMAGENET1K_V1"``.
    """
    layers = _check_layers(layers)
    source, origin = resolve_source(weights)
    device = torch.device(device)
    stamp = None
    if source != TORCHVISION_SOURCE and Path(source).is_file():
        st = Path(source).stat()
        stamp = (st.st_mtime_ns, st.st_size)
    key = (layers, source, stamp, str(device))
    if key not in _CACHE:
        state = _download_state() if source == TORCHVISION_SOURCE else _read_state(source, origin)
        model = VGGFeatures(layers, weights_source=source)
        _apply_state(model, state, source)
        _CACHE[key] = model.to(device)
    return _CACHE[key]

"""The VGG19 of the official recipe: MatConvNet's ``imagenet-vgg-verydeep-19.mat``, as the
released SRNTT loads it (ZZUTK/SRNTT, ``SRNTT/vgg19.py``), or torchvision's weights in its units.

**MatConvNet** (:func:`load_matconvnet_vgg19`): the file's ``layers`` cell array is read with
scipy, convolution ``i`` being the ``i``-th entry of the released layer list (``conv1_1``,
``relu1_1``, ..., ``pool5``: the same indices as torchvision's ``vgg19().features``, so the
network is :class:`refsr.features.vgg.VGGFeatures` with other weights and input convention).
Kernels are taken as the released code takes them: the stored array is read as
[width, height, in, out] and transposed (1, 0, 2, 3) to HWIO; biases are flattened. The
input is RGB in [0, 255] minus the released mean pixel (123.68, 116.779, 103.939): for an
image ``x`` in [0, 1] that is ``(x - mean/255) / (1/255)``. Weights are looked up by the
struct field ``weights`` (the released code tries the field at position 0, then 2, which
covers the two published versions of the file). Pooling: 2x2, stride 2, floored like
torchvision's, where the released code pools with ``'SAME'`` padding; they differ only for
maps of odd size, which the released code never makes (it crops images to multiples of 4).

**torchvision in MatConvNet units** (:class:`TorchvisionInMatConvNetUnits`): where no ``.mat``
is found (this project's offline machines hold only torchvision's conv1_1..conv3_1), the
official recipe uses torchvision's weights on their own input convention ((x - μ)/σ) and
multiplies every feature by ``255 · mean(σ)`` (≈ 57.6). torchvision's network sees the
MatConvNet input ``255·x - 255·μ`` divided by ``255·σ``; for a bias-free ReLU network that
scales every activation by the same factor, so the scaled features are on the scale the
released loss weights (1e-4 texture, 1e-4 perceptual) were tuned for. It is an approximation
(two differently trained networks, biases), named in every caption.

Which one a run uses: :func:`resolve_mat` (``REFSR_VGG19_MAT``, else the config key
``official.vgg19_mat``, else the torch hub cache that ``refsr download-weights`` fills).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from refsr.core.errors import RefsrError
from refsr.features.vgg import (
    CONVS,
    IMAGENET_STD,
    LAYERS,
    VGGFeatures,
    _check_layers,
    load_vgg19,
    resolve_source,
)

log = logging.getLogger(__name__)

ENV_VAR = "REFSR_VGG19_MAT"
MAT_NAME = "imagenet-vgg-verydeep-19.mat"
#: The released ``VGG19.mean_pixel`` (RGB, on [0, 255]).
MEAN_PIXEL = (123.68, 116.779, 103.939)
#: The released layer list (``SRNTT/vgg19.py``): entry ``i`` of the file's ``layers``.
LAYER_NAMES = (
    "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
    "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
    "conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "conv3_4", "relu3_4", "pool3",
    "conv4_1", "relu4_1", "conv4_2", "relu4_2", "conv4_3", "relu4_3", "conv4_4", "relu4_4", "pool4",
    "conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3", "conv5_4", "relu5_4", "pool5",
)
#: torchvision's features scaled into MatConvNet's input units (see the module docstring).
TORCHVISION_SCALE = 255.0 * float(np.mean(IMAGENET_STD))

_CACHE: dict[tuple, nn.Module] = {}


class MatConvNetVGG19(VGGFeatures):
    """VGG19 ``features`` with MatConvNet weights and input convention (RGB [0, 255] minus the
    mean pixel); input RGB in [0, 1], output ``{layer: N x C x h x w}``, frozen."""

    def __init__(self, layers: Iterable[str] = ("relu1_1", "relu2_1", "relu3_1"),
                 weights_source: str = "uninitialised"):
        super().__init__(layers, weights_source)
        self.mean.copy_(torch.tensor(MEAN_PIXEL).view(1, 3, 1, 1) / 255.0)
        self.std.fill_(1.0 / 255.0)


class TorchvisionInMatConvNetUnits(nn.Module):
    """torchvision's VGG19 features times :data:`TORCHVISION_SCALE` (the official recipe
    without the MatConvNet file); the same interface as :class:`VGGFeatures`."""

    def __init__(self, vgg: VGGFeatures):
        super().__init__()
        self.vgg = vgg
        self.layers = vgg.layers
        self.scale = TORCHVISION_SCALE
        self.weights_source = (f"{vgg.weights_source} (torchvision VGG19, features x {self.scale:.2f}: "
                               f"no {MAT_NAME} found)")
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> TorchvisionInMatConvNetUnits:
        return super().train(False)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {k: v * self.scale for k, v in self.vgg(x).items()}


def _field(entry, name: str, path, index: int):
    names = entry.dtype.names or ()
    if name not in names:
        raise RefsrError(path, f"layers[{index}] ({LAYER_NAMES[index]}) has no field {name!r} "
                               f"(it has {', '.join(names) or 'none'}); not MatConvNet's {MAT_NAME}")
    return entry[name]


def _text(value) -> str:
    arr = np.asarray(value).ravel()
    return str(arr[0]) if arr.size else ""


def read_mat_state(path: str | os.PathLike, last_index: int) -> dict[str, Tensor]:
    """The convolutions of ``path`` up to ``features.last_index`` as a torchvision-keyed state
    dict (``N.weight``, ``N.bias``); a one-line error naming the file and the first offending
    parameter."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise RefsrError(path, f"MatConvNet VGG19 weights ({MAT_NAME}) not found")
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as err:  # scipy raises ValueError, TypeError, MatReadError... for a bad file
        first = " ".join(str(err).split())[:160]
        raise RefsrError(path, f"cannot read it as a MATLAB file ({type(err).__name__}: {first})") from None
    if "layers" not in mat:
        raise RefsrError(path, f"has no 'layers' array (it holds {', '.join(k for k in mat if not k.startswith('__'))}); "
                               f"not MatConvNet's {MAT_NAME}")
    layers = np.asarray(mat["layers"]).ravel()
    state: dict[str, Tensor] = {}
    for index, name, c_in, c_out in CONVS:
        if index > last_index:
            break
        if index >= layers.size:
            raise RefsrError(path, f"has {layers.size} layers; {name} is layers[{index}]")
        entry = np.asarray(layers[index]).ravel()[0]
        found = _text(_field(entry, "name", path, index))
        if found != name:
            raise RefsrError(path, f"layers[{index}] is {found!r}, expected {name} (the released layer order)")
        weights = np.asarray(_field(entry, "weights", path, index)).ravel()
        if weights.size != 2:
            raise RefsrError(path, f"{name} (layers[{index}]) holds {weights.size} weight arrays, expected kernel and bias")
        kernel, bias = np.asarray(weights[0]), np.asarray(weights[1])
        if kernel.shape != (3, 3, c_in, c_out):
            raise RefsrError(path, f"{name} (layers[{index}]) kernel has shape {kernel.shape}, "
                                   f"expected (3, 3, {c_in}, {c_out})")
        if bias.size != c_out:
            raise RefsrError(path, f"{name} (layers[{index}]) bias has {bias.size} values, expected {c_out}")
        hwio = np.transpose(kernel, (1, 0, 2, 3))  # as released: MatConvNet [W, H, in, out] -> HWIO
        state[f"{index}.weight"] = torch.from_numpy(np.ascontiguousarray(hwio.transpose(3, 2, 0, 1), dtype=np.float32))
        state[f"{index}.bias"] = torch.from_numpy(np.ascontiguousarray(bias.reshape(-1), dtype=np.float32))
    return state


def load_matconvnet_vgg19(path: str | os.PathLike, layers: Iterable[str] = ("relu1_1", "relu2_1", "relu3_1"),
                          device: str | torch.device = "cpu", origin: str = "") -> MatConvNetVGG19:
    """A frozen :class:`MatConvNetVGG19` from ``imagenet-vgg-verydeep-19.mat`` (cached per
    layers, file and device; the returned module is shared, do not modify it)."""
    layers = _check_layers(layers)
    path = Path(path)
    st = path.stat() if path.is_file() else None
    key = ("mat", layers, str(path), st and (st.st_mtime_ns, st.st_size), str(device))
    if key not in _CACHE:
        state = read_mat_state(path, LAYERS[layers[-1]])
        model = MatConvNetVGG19(layers, weights_source=f"{path} (MatConvNet{', ' + origin if origin else ''})")
        model.features.load_state_dict(state, strict=True)
        _CACHE[key] = model.to(device)
    return _CACHE[key]


def default_mat_path() -> Path:
    """Where ``refsr download-weights`` puts the file (the torch hub cache)."""
    from refsr.features.weights import cache_path

    return cache_path("vgg19_matconvnet")


def resolve_mat(path: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """``(file, origin)`` of the MatConvNet VGG19: ``REFSR_VGG19_MAT``, else ``path`` (the config
    key ``official.vgg19_mat``; both must exist), else the torch hub cache if it holds the file;
    ``(None, why)`` when there is none."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env), f"from {ENV_VAR}"
    if path is not None and str(path).strip():
        return Path(path), "from config key official.vgg19_mat"
    cached = default_mat_path()
    if cached.is_file():
        return cached, "from the torch hub cache"
    return None, (f"no {MAT_NAME} (config key official.vgg19_mat, {ENV_VAR}, or the torch hub cache "
                  "that `refsr download-weights` fills)")


def load_official_vgg19(layers: Iterable[str] = ("relu1_1", "relu2_1", "relu3_1"),
                        mat: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
                        device: str | torch.device = "cpu") -> nn.Module:
    """The official recipe's VGG19: MatConvNet's file when :func:`resolve_mat` finds one, else
    torchvision's weights (``weights``, ``REFSR_VGG19_WEIGHTS``, or the torch hub) in
    MatConvNet's units, with a warning. Its ``weights_source`` says which."""
    path, origin = resolve_mat(mat)
    if path is not None:
        return load_matconvnet_vgg19(path, layers, device, origin)
    layers = _check_layers(layers)
    key = ("torchvision", layers, resolve_source(weights), str(device))
    if key not in _CACHE:
        log.warning("official recipe: %s; using torchvision's VGG19 weights in MatConvNet's units "
                    "(features x %.2f) instead", origin, TORCHVISION_SCALE)
        _CACHE[key] = TorchvisionInMatConvNetUnits(load_vgg19(layers, weights, device)).to(device)
    return _CACHE[key]


def official_vgg_provenance(mat: str | os.PathLike | None = None,
                            weights: str | os.PathLike | None = None) -> str:
    """What the official recipe's VGG19 is on this machine, for captions (no weights loaded)."""
    path, origin = resolve_mat(mat)
    if path is not None:
        return f"MatConvNet {path.name} ({origin})"
    source, where = resolve_source(weights)
    return (f"torchvision VGG19 {Path(source).name} ({where}) in MatConvNet's units, features x "
            f"{TORCHVISION_SCALE:.2f}, because there is {origin}")


__all__ = [
    "ENV_VAR",
    "LAYER_NAMES",
    "MAT_NAME",
    "MEAN_PIXEL",
    "TORCHVISION_SCALE",
    "MatConvNetVGG19",
    "TorchvisionInMatConvNetUnits",
    "load_matconvnet_vgg19",
    "load_official_vgg19",
    "official_vgg_provenance",
    "read_mat_state",
    "resolve_mat",
]

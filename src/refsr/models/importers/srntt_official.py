"""Source ``srntt-official``: the released SRNTT weights (ZZUTK/SRNTT, TensorLayer ``.npz``).

The released folder (``SRNTT/models/SRNTT/``) holds, in TensorLayer's ``files.save_npz``
layout (one key ``params``: an object array of float32 arrays in the order the variables were
created, ``network.all_params``):

* ``upscale.npz``: the content extractor and its x4 upscaling (``net_upscale``), 173 arrays
  for the released 16 residual blocks → model ``srresnet`` (recipe official);
* ``srntt_init.npz``: the texture transfer after the reconstruction-only epochs → ``srntt_l2``;
* ``srntt.npz``: the texture transfer after training with all losses → ``srntt``.

The texture-transfer files hold only ``texture_transfer/*`` variables (309 for 16/8/4 blocks),
so both SRNTT checkpoints take their content extractor from ``upscale.npz``, as the released
test code does. The sizes (residual blocks, channels) are read off the arrays: the count fixes
the number of blocks, the first kernel the channels; every array is then checked against the
layout the released graph creates (:func:`upscale_layout`, :func:`transfer_layout`), in
order, and the first one that does not fit is named with its index and TensorFlow variable.

Conversions: kernels HWIO → OIHW; TensorFlow's ``depth_to_space`` (output pixel (2h+i, 2w+j, c)
from channel (2i+j)·C + c) → PyTorch's ``pixel_shuffle`` (channel 4c + 2i + j) by permuting
the output channels (and bias) of each upscaling convolution; batch norm ``beta, gamma,
moving_mean, moving_variance`` → ``bias, weight, running_mean, running_var``.

The object arrays are unpickled with an allow-list (NumPy's array reconstruction only), so
a crafted file cannot run code; Python 2 pickles (the released code is Python 2) are read
with ``latin1`` as NumPy does.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from refsr.core.errors import RefsrError
from refsr.models.checkpoint import save_checkpoint
from refsr.models.importers import RELEASED_FILES_KEY, file_record
from refsr.models.srntt_official import STAGES, SRNTTOfficial, SRResNetOfficial

RECIPE = "official"
UPSCALE, INIT, FULL = "upscale.npz", "srntt_init.npz", "srntt.npz"
#: released file -> the model it gives (with the content extractor from upscale.npz).
TRANSFER_FILES = {INIT: "srntt_l2", FULL: "srntt"}
BN_FIELDS = (("beta", "bias"), ("gamma", "weight"), ("moving_mean", "running_mean"),
             ("moving_variance", "running_var"))


@dataclass(frozen=True)
class Param:
    """One released array: its TensorFlow variable, shape, and where it goes in the refsr model."""

    tf_name: str
    shape: tuple[int, ...]
    key: str
    convert: Callable[[np.ndarray], np.ndarray]


def _kernel(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(3, 2, 0, 1))


def _d2s_perm(c_out: int) -> np.ndarray:
    """PyTorch channel p = 4c + k takes TensorFlow channel k·C + c (C = c_out / 4)."""
    c = c_out // 4
    return np.array([k * c + ch for ch in range(c) for k in range(4)])


def _shuffled_kernel(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(_kernel(a)[_d2s_perm(a.shape[-1])])


def _shuffled_bias(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a[_d2s_perm(a.shape[0])])


def _same(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a)


def _conv(tf: str, key: str, k: int, c_in: int, c_out: int, bias: bool, shuffled: bool = False) -> list[Param]:
    out = [Param(f"{tf}/W_conv2d", (k, k, c_in, c_out), f"{key}.weight",
                 _shuffled_kernel if shuffled else _kernel)]
    if bias:
        out.append(Param(f"{tf}/b_conv2d", (c_out,), f"{key}.bias", _shuffled_bias if shuffled else _same))
    return out


def _bn(tf: str, key: str, c: int) -> list[Param]:
    return [Param(f"{tf}/{name}", (c,), f"{key}.{field}", _same) for name, field in BN_FIELDS]


def extractor_layout(n_blocks: int, n_feats: int) -> list[Param]:
    """``content_extractor/n64s1/*`` as the released graph creates it (TensorLayer order)."""
    s, n = "content_extractor/n64s1", n_feats
    out = _conv(f"{s}/c", "extractor.head", 3, 3, n, bias=True)
    for i in range(n_blocks):
        out += _conv(f"{s}/c1/{i}", f"extractor.blocks.{i}.conv1", 3, n, n, bias=False)
        out += _bn(f"{s}/b1/{i}", f"extractor.blocks.{i}.bn1", n)
        out += _conv(f"{s}/c2/{i}", f"extractor.blocks.{i}.conv2", 3, n, n, bias=False)
        out += _bn(f"{s}/b2/{i}", f"extractor.blocks.{i}.bn2", n)
    out += _conv(f"{s}/c/m", "extractor.conv", 3, n, n, bias=False)
    out += _bn(f"{s}/b/m", "extractor.bn", n)
    return out


def upscale_layout(n_blocks: int, n_feats: int) -> list[Param]:
    """Every array of ``upscale.npz`` (``net_upscale.all_params``), in order."""
    n = n_feats
    out = extractor_layout(n_blocks, n)
    out += _conv("content_extractor/n256s1/1", "up1.conv", 3, n, 4 * n, bias=True, shuffled=True)
    out += _conv("content_extractor/n256s1/2", "up2.conv", 3, n, 4 * n, bias=True, shuffled=True)
    out += _conv("content_extractor/out", "out", 1, n, 3, bias=True)
    return out


def transfer_layout(blocks: tuple[int, int, int], n_feats: int) -> list[Param]:
    """Every array of ``srntt.npz`` / ``srntt_init.npz`` (``net_srntt.all_params``), in order."""
    from refsr.models.srntt import MAP_CHANNELS

    n, out = n_feats, []
    for (stage, layer), nb in zip(STAGES.items(), blocks, strict=True):
        t = f"texture_transfer/{stage}"
        out += _conv(f"{t}/conv1", f"{stage}.conv1", 3, n + MAP_CHANNELS[layer], n, bias=True)
        for i in range(nb):
            out += _conv(f"{t}/resblock_{i}/conv1", f"{stage}.blocks.{i}.conv1", 3, n, n, bias=False)
            out += _bn(f"{t}/resblock_{i}/bn1", f"{stage}.blocks.{i}.bn1", n)
            out += _conv(f"{t}/resblock_{i}/conv2", f"{stage}.blocks.{i}.conv2", 3, n, n, bias=False)
            out += _bn(f"{t}/resblock_{i}/bn2", f"{stage}.blocks.{i}.bn2", n)
        out += _conv(f"{t}/conv2", f"{stage}.conv2", 3, n, n, bias=False)
        out += _bn(f"{t}/bn2", f"{stage}.bn2", n)
        if stage != "large":
            out += _conv(f"{t}/conv3", f"{stage}_up.conv", 3, n, 4 * n, bias=True, shuffled=True)
        else:
            out += _conv(f"{t}/conv3", "large_conv3", 3, n, n // 2, bias=True)
    out += _conv("texture_transfer/out", "out", 1, n // 2, 3, bias=True)
    return out


# --------------------------------------------------------------------------- reading


class _NumpyOnly(pickle.Unpickler):
    """Unpickles NumPy arrays and nothing else (no code runs from a crafted file)."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not a NumPy array")
        return super().find_class(module, name)


def read_params(path: Path) -> list[np.ndarray]:
    """The arrays of a TensorLayer ``save_npz`` file (key ``params``), in order."""
    try:
        with zipfile.ZipFile(path) as zf:
            if "params.npy" not in zf.namelist():
                raise RefsrError(path, f"not a TensorLayer weights file: no 'params' array (it holds "
                                       f"{', '.join(n.removesuffix('.npy') for n in zf.namelist()) or 'nothing'})")
            with zf.open("params.npy") as fh:
                version = np.lib.format.read_magic(fh)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(fh)
                if dtype.hasobject:
                    arrays = _NumpyOnly(fh, encoding="latin1").load()
                else:
                    arrays = np.frombuffer(fh.read(), dtype=dtype).reshape(shape, order="F" if fortran else "C")
    except RefsrError:
        raise
    except (zipfile.BadZipFile, ValueError, EOFError, pickle.UnpicklingError, OSError) as err:
        raise RefsrError(path, f"cannot read the released weights ({type(err).__name__}: "
                               f"{' '.join(str(err).split())[:160]})") from None
    out = list(arrays) if isinstance(arrays, (np.ndarray, list, tuple)) else None
    if out is None or not all(isinstance(a, np.ndarray) for a in out):
        raise RefsrError(path, "not a TensorLayer weights file: 'params' is not a list of arrays")
    return out


def _arch_from(path: Path, arrays: list[np.ndarray],
               layouts: Callable[[int, int], list[Param]], candidates: Callable[[int], list[int]]) -> tuple[int, int]:
    """(residual blocks, channels) of a released file: the channels from its first kernel, the
    blocks from its array count; when the count fits no layout (a parameter missing or extra),
    the nearest layouts are tried and the one whose shapes agree longest is taken, so that
    :func:`state_dict` names the first parameter out of place."""
    first = arrays[0] if arrays else None
    if first is None or first.ndim != 4 or first.shape[:2] != (3, 3):
        got = "nothing" if first is None else f"shape {tuple(first.shape)}"
        raise RefsrError(path, f"parameter 0 is {got}, expected a 3x3 kernel (3, 3, C_in, C_out)")
    n_feats = int(first.shape[3])

    def agreement(n: int) -> int:
        layout = layouts(n, n_feats)
        same = next((i for i, (a, p) in enumerate(zip(arrays, layout, strict=False)) if tuple(a.shape) != p.shape),
                    min(len(arrays), len(layout)))
        return same + (len(layout) == len(arrays))

    return max(candidates(len(arrays)), key=agreement), n_feats


def _upscale_candidates(count: int) -> list[int]:
    n = (count - len(upscale_layout(0, 8))) / 10
    return sorted({max(1, int(np.floor(n))), max(1, int(np.ceil(n)))})


def _transfer_candidates(count: int) -> list[int]:
    """``num_res_blocks`` n of a texture-transfer file (stages of n, n/2, n/4 blocks, int())."""
    n = 4
    while len(transfer_layout(_released_split(n), 8)) < count:
        n += 1
    return sorted({max(4, n - 1), n})


def _transfer_layout(n: int, n_feats: int) -> list[Param]:
    return transfer_layout(_released_split(n), n_feats)


def _released_split(n: int) -> tuple[int, int, int]:
    return (n, int(n / 2), int(n / 4))


def state_dict(path: Path, arrays: list[np.ndarray], layout: list[Param]) -> dict[str, torch.Tensor]:
    """The refsr tensors of ``arrays`` laid out as ``layout``; a one-line error naming ``path``
    and the first parameter that is mis-shaped, missing, extra or not floating point."""
    for i, (a, p) in enumerate(zip(arrays, layout, strict=False)):
        if tuple(a.shape) != p.shape:
            extra = "" if len(arrays) == len(layout) else \
                f" (the file holds {len(arrays)} arrays, the released layout {len(layout)})"
            raise RefsrError(path, f"parameter {i} ({p.tf_name}) has shape {tuple(a.shape)}, expected {p.shape}{extra}")
        if not np.issubdtype(a.dtype, np.floating):
            raise RefsrError(path, f"parameter {i} ({p.tf_name}) is {a.dtype}, expected floating point")
    if len(arrays) < len(layout):
        p = layout[len(arrays)]
        raise RefsrError(path, f"parameter {len(arrays)} ({p.tf_name}, shape {p.shape}) is missing: the file "
                               f"holds {len(arrays)} arrays, the released layout {len(layout)}")
    if len(arrays) > len(layout):
        raise RefsrError(path, f"parameter {len(layout)} (shape {tuple(arrays[len(layout)].shape)}) is not in "
                               f"the released layout of {len(layout)} arrays")
    return {p.key: torch.from_numpy(p.convert(a.astype(np.float32, copy=False))) for a, p in zip(arrays, layout, strict=True)}


def _load_into(model: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    own = model.state_dict()
    wanted = {k for k in own if not k.endswith("num_batches_tracked")}
    missing = sorted(wanted - set(tensors))
    if missing:  # a layout that does not cover the network: a bug here, not a bad file
        raise AssertionError(f"{path}: layout misses {missing[:3]}")
    own.update(tensors)
    model.load_state_dict(own)


def load_upscale(path: Path) -> tuple[SRResNetOfficial, dict]:
    """``upscale.npz`` as an official SRResNet and its architecture config."""
    arrays = read_params(path)
    n_blocks, n_feats = _arch_from(path, arrays, upscale_layout, _upscale_candidates)
    tensors = state_dict(path, arrays, upscale_layout(n_blocks, n_feats))
    model = SRResNetOfficial(n_blocks=n_blocks, n_feats=n_feats)
    _load_into(model, tensors, path)
    return model, {"n_blocks": n_blocks, "n_feats": n_feats}


def load_srntt(upscale: Path, transfer: Path) -> tuple[SRNTTOfficial, dict]:
    """A texture-transfer file on ``upscale.npz``'s content extractor, as an official SRNTT."""
    sisr, cfg = load_upscale(upscale)
    arrays = read_params(transfer)
    n, _ = _arch_from(transfer, arrays, _transfer_layout, _transfer_candidates)
    blocks = _released_split(n)
    tensors = state_dict(transfer, arrays, transfer_layout(blocks, cfg["n_feats"]))
    model = SRNTTOfficial(n_blocks=cfg["n_blocks"], n_feats=cfg["n_feats"], n_blocks_transfer=blocks)
    model.load_content_extractor(sisr.state_dict(), source=str(upscale))
    _load_into(model, {**{k: v for k, v in model.state_dict().items() if k.startswith("extractor.")},
                       **tensors}, transfer)
    return model, {**cfg, "n_blocks_transfer": list(blocks)}


def import_released(src: Path, out_dir: Path) -> dict[str, Path]:
    """The released folder ``src`` → ``out_dir/{srresnet,srntt_l2,srntt}.pt`` (those whose files
    are there; ``upscale.npz`` is always needed)."""
    src = Path(src)
    if not src.is_dir():
        raise RefsrError(src, f"expected the released folder (SRNTT/models/SRNTT/) holding {UPSCALE}, "
                              f"{INIT} and/or {FULL}")
    upscale = src / UPSCALE
    if not upscale.is_file():
        raise RefsrError(upscale, "not found: every released SRNTT model needs the content extractor")
    written: dict[str, Path] = {}
    model, cfg = load_upscale(upscale)
    extra = {"imported_from": str(upscale), "source": "srntt-official", RELEASED_FILES_KEY: [file_record(upscale)]}
    written["srresnet"] = _save(out_dir, "srresnet", model, cfg, extra)
    for name, target in TRANSFER_FILES.items():
        if (src / name).is_file():
            model, cfg = load_srntt(upscale, src / name)
            extra = {"imported_from": f"{upscale} + {src / name}", "source": "srntt-official",
                     RELEASED_FILES_KEY: [file_record(upscale), file_record(src / name)]}
            written[target] = _save(out_dir, target, model, cfg, extra)
    return written


def _save(out_dir: Path, name: str, model, cfg: dict, extra: dict) -> Path:
    out = Path(out_dir) / f"{name}.pt"
    save_checkpoint(out, model, name, cfg, extra=extra, recipe=RECIPE)
    return out

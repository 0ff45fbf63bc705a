"""LPIPS (Zhang et al. 2018): AlexNet trunk, v0.1 linear heads, on RGB in [-1, 1].

Computed only with the ImageNet AlexNet weights: if they cannot be loaded (offline, missing
or corrupt file, ``lpips`` not installed), :class:`LPIPSMetric` is unavailable, says why in
one line and returns NaN. It never reports a value computed with a random trunk.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from refsr.core.errors import RefsrError
from refsr.evaluation.metrics import image_size

#: Environment variable naming a local torchvision AlexNet state dict for LPIPS.
LPIPS_WEIGHTS_ENV = "REFSR_LPIPS_ALEX_WEIGHTS"
#: torchvision's ImageNet AlexNet (``AlexNet_Weights.IMAGENET1K_V1``).
ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
#: torchvision ``alexnet.features`` index -> lpips ``pretrained_networks.alexnet`` slice.
_ALEX_SLICES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 2, 5: 3, 6: 3, 7: 3, 8: 4, 9: 4, 10: 5, 11: 5}
_ALEX_CONVS = (0, 3, 6, 8, 10)
_FIX_HINT = (
    f"set {LPIPS_WEIGHTS_ENV} to a local torchvision alexnet state dict, or run "
    "`snakemake download_weights` (or `refsr download-weights`) on a machine with internet"
)


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def alexnet_cache_path() -> Path:
    """Where ``torch.hub`` caches the torchvision AlexNet weights (honours ``TORCH_HOME``)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_URL.rsplit("/", 1)[1]


def _alex_features_to_lpips(state: Mapping[str, Any]) -> dict[str, Any]:
    """Map a torchvision alexnet state dict (full, ``features.*`` only, or bare ``N.*``,
    or already lpips ``sliceK.N.*``) onto the keys of ``lpips.pretrained_networks.alexnet``."""
    if "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    out: dict[str, Any] = {}
    for key, val in state.items():
        k = key[len("module.") :] if key.startswith("module.") else key
        if k.startswith("slice"):
            out[k] = val
            continue
        if k.startswith("features."):
            k = k[len("features.") :]
        idx, _, param = k.partition(".")
        if idx.isdigit() and int(idx) in _ALEX_SLICES and param in ("weight", "bias"):
            out[f"slice{_ALEX_SLICES[int(idx)]}.{idx}.{param}"] = val
    missing = [
        f"features.{i}.{p}"
        for i in _ALEX_CONVS
        for p in ("weight", "bias")
        if f"slice{_ALEX_SLICES[i]}.{i}.{p}" not in out
    ]
    if missing:
        raise ValueError(f"not an AlexNet state dict: missing {', '.join(missing)}")
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class LPIPSMetric:
    """LPIPS (AlexNet trunk, v0.1 heads), built lazily on first use.

    Trunk weights, first source that is given wins:

    1. ``weights_path`` argument, else 2. ``$REFSR_LPIPS_ALEX_WEIGHTS`` — a local
       torchvision ``alexnet`` state dict (the full model's, or only ``features.*``);
    3. torchvision's hash-checked file via ``torch.hub`` (cache under ``$TORCH_HOME``
       first; downloaded only if ``allow_download``).

    If that fails (offline, missing/corrupt file, ``lpips`` not installed) the metric is
    unavailable: :attr:`available` is False, :attr:`reason` says why in one line, and
    calling it returns NaN. The model is built with ``pnet_rand=True`` (so ``lpips`` never
    downloads by itself) and is marked available only after the ImageNet trunk weights were
    loaded into it with a strict key/shape check.
    """

    net = "alex"
    version = "0.1"

    def __init__(
        self,
        weights_path: str | os.PathLike | None = None,
        device: str = "cpu",
        allow_download: bool = True,
    ):
        self.weights_path = weights_path
        self.device = device
        self.allow_download = allow_download
        self._model = None
        self._reason: str | None = None
        self._source: str | None = None
        self._built = False

    # -- state ---------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        self._ensure()
        return self._model is not None

    @property
    def reason(self) -> str | None:
        """One line saying why the metric is unavailable (None when available)."""
        self._ensure()
        return self._reason

    @property
    def source(self) -> str | None:
        """Provenance of the trunk weights (for table captions); None when unavailable."""
        self._ensure()
        return self._source

    # -- building ------------------------------------------------------------------------
    def _build_skeleton(self):
        import lpips

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's `pretrained=` deprecation notice
            model = lpips.LPIPS(
                pretrained=True, net=self.net, version=self.version, pnet_rand=True, verbose=False
            )
        return model.to(self.device).eval()

    def _load_trunk_state(self) -> tuple[Mapping[str, Any], str]:
        import torch

        explicit = self.weights_path or os.environ.get(LPIPS_WEIGHTS_ENV) or None
        if explicit:
            origin = "weights_path" if self.weights_path else LPIPS_WEIGHTS_ENV
            path = Path(explicit).expanduser()
            if not path.is_file():
                raise _Unavailable(f"AlexNet weights file {path} (from {origin}) not found")
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - any unreadable file -> unavailable
                raise _Unavailable(
                    f"cannot read AlexNet weights {path} (from {origin}): {_one_line(exc)}"
                ) from exc
            if not isinstance(state, Mapping):
                raise _Unavailable(f"AlexNet weights {path} (from {origin}) is not a state dict")
            return state, f"{path} (sha256 {_sha256(path)[:12]})"
        cached = alexnet_cache_path()
        if not self.allow_download and not cached.is_file():
            raise _Unavailable(
                f"AlexNet ImageNet weights not found in the torch hub cache ({cached}) and "
                f"downloading is disabled; {_FIX_HINT}"
            )
        try:
            # torch.hub announces downloads on stdout, which would corrupt `refsr score`'s JSON
            with contextlib.redirect_stdout(sys.stderr):
                state = torch.hub.load_state_dict_from_url(
                    ALEXNET_URL, map_location="cpu", progress=False, check_hash=True
                )
        except Exception as exc:  # noqa: BLE001 - URLError, HTTPError, hash mismatch, ...
            raise _Unavailable(
                "AlexNet ImageNet weights not available offline (torchvision download "
                f"failed: {_one_line(exc)}); {_FIX_HINT}"
            ) from exc
        return state, f"torchvision {ALEXNET_URL.rsplit('/', 1)[1]} (hash-checked)"

    def _ensure(self) -> None:
        if self._built:
            return
        self._built = True
        try:
            import lpips  # noqa: F401
        except Exception as exc:  # noqa: BLE001
            self._reason = f"lpips package not importable ({_one_line(exc)})"
            return
        try:
            state, source = self._load_trunk_state()
            mapped = _alex_features_to_lpips(state)
        except _Unavailable as exc:
            self._reason = str(exc)
            return
        except ValueError as exc:
            self._reason = f"AlexNet weights unusable: {exc}; {_FIX_HINT}"
            return
        try:
            model = self._build_skeleton()
            model.net.load_state_dict(mapped, strict=True)  # every trunk tensor replaced
        except Exception as exc:  # noqa: BLE001 - shape mismatch, lpips heads missing, ...
            self._reason = f"cannot build LPIPS with these AlexNet weights: {_one_line(exc)}"
            return
        self._model, self._source = model, source

    # -- scoring -------------------------------------------------------------------------
    def _to_tensor(self, img: np.ndarray):
        import torch

        arr = np.asarray(img)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"LPIPS expects an (H, W, 3) RGB image, got shape {arr.shape}")
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        t = t.permute(2, 0, 1)[None] / 127.5 - 1.0  # uint8 0..255 -> [-1, 1]
        return t.to(self.device)

    def __call__(
        self, sr: np.ndarray, hr: np.ndarray, *, sr_name: Any = None, hr_name: Any = None
    ) -> float:
        """LPIPS distance of two RGB images on the 0..255 scale (full image, no crop)."""
        sr, hr = np.asarray(sr), np.asarray(hr)
        if sr.shape != hr.shape:
            raise RefsrError(
                f"{sr_name or 'SR'} vs {hr_name or 'HR'}",
                f"size mismatch: SR is {image_size(sr)} but HR is {image_size(hr)} (width x height[x channels])",
            )
        if not self.available:
            return math.nan
        import torch

        with torch.no_grad():
            d = self._model(self._to_tensor(sr), self._to_tensor(hr))
        return float(d.reshape(-1)[0].item())


class _Unavailable(Exception):
    pass

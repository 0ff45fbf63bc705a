"""Image-quality metrics under one explicit evaluation protocol (DESIGN.md section 3).

Default protocol, stated in every table caption by :meth:`Protocol.describe`:

* **Y channel** of MATLAB's ``rgb2ycbcr`` (ITU-R BT.601, studio swing, Y in [16, 235]).
  For ``uint8`` input MATLAB returns ``uint8``, i.e. Y is *rounded* (half away from
  zero) to an integer; :func:`rgb2ycbcr_y` does the same by default (``round_y=True``).
  BasicSR's ``calculate_psnr(test_y_channel=True)`` does not round (it converts to float
  first); pass ``round_y=False`` to compare with it. The difference is up to ~0.05 dB.
* **Border crop** of ``crop`` pixels on every side before PSNR and SSIM.
* **PSNR** with data range 255 on the (rounded) Y values; identical images give ``inf``.
* **SSIM** as Wang et al.'s reference ``ssim_index.m``: Gaussian 11x11 window,
  sigma = 1.5, normalised to sum 1; K1 = 0.01, K2 = 0.03, L = 255; ``filter2(..., 'valid')``
  (no padding; the map is 10 pixels smaller than the cropped image in each dimension);
  population (not sample) variances; result = mean of the SSIM map. In RGB mode
  (``y_channel=False``) SSIM is computed per channel and averaged.
* **LPIPS** (``lpips`` package, AlexNet trunk, v0.1 linear heads) on the *full* RGB image
  (no border crop, as the LPIPS reference scripts do), scaled from uint8 to [-1, 1].
  If the ImageNet AlexNet weights cannot be loaded, :class:`LPIPSMetric` is *unavailable*,
  says why in :attr:`LPIPSMetric.reason`, and returns NaN; it never reports a value
  computed with a random trunk.

All functions take ``uint8`` RGB ``(H, W, 3)`` arrays (what :func:`refsr.imageio.read_image`
returns). Float arrays are accepted as values on the 0..255 scale (for the
``rounding="none"`` protocol variant); :func:`quantize_uint8` is the rounding used for
model outputs under the default ``rounding="uint8"``.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RefsrError

# --------------------------------------------------------------------------------------
# colour conversion and cropping
# --------------------------------------------------------------------------------------

#: MATLAB ``rgb2ycbcr`` Y row (for R, G, B in 0..255, before division by 255).
_Y_ROW = (65.481, 128.553, 24.966)
#: What MATLAB actually multiplies uint8 R, G, B by: ``(1/255) * origT`` (computed that way
#: round so that floating-point ties resolve as in ``imlincomb``).
_Y_COEF = tuple((1.0 / 255.0) * c for c in _Y_ROW)


def rgb2ycbcr_y(img: np.ndarray, round_y: bool = True) -> np.ndarray:
    """Y of MATLAB's ``rgb2ycbcr`` for RGB values on the 0..255 scale, as float64.

    ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255``, in [16, 235].

    ``round_y=True`` (default) reproduces MATLAB for ``uint8`` input, which returns
    ``uint8``: ``imlincomb`` evaluates ``T1*R + T2*G + T3*B + 16`` in double with
    ``T = origT / 255`` and rounds half away from zero. (194 of the 2^24 colours are exact
    ties in exact arithmetic; in that floating-point order 45 of them land exactly on .5
    and round up, the rest fall just below.) ``round_y=False`` keeps the float value, as
    BasicSR's ``to_y_channel`` does.
    """
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"rgb2ycbcr_y expects an (H, W, 3) RGB array, got shape {arr.shape}")
    rgb = arr.astype(np.float64, copy=False)
    y = _Y_COEF[0] * rgb[..., 0] + _Y_COEF[1] * rgb[..., 1] + _Y_COEF[2] * rgb[..., 2] + 16.0
    if round_y:
        y = np.floor(y + 0.5)  # MATLAB round (half away from zero); y > 0 here
        np.clip(y, 0.0, 255.0, out=y)  # uint8 saturation (only reachable for float input)
    return y


def quantize_uint8(img: np.ndarray) -> np.ndarray:
    """Round a float image on the 0..255 scale to ``uint8`` (half away from zero, clipped)."""
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        return arr
    out = np.floor(np.clip(arr.astype(np.float64), 0.0, 255.0) + 0.5)
    return out.astype(np.uint8)


def crop_border(img: np.ndarray, crop: int) -> np.ndarray:
    """Remove ``crop`` pixels from each side of the first two axes (``crop=0``: unchanged)."""
    crop = int(crop)
    if crop < 0:
        raise ValueError(f"crop must be >= 0, got {crop}")
    if crop == 0:
        return img
    h, w = img.shape[:2]
    if 2 * crop >= h or 2 * crop >= w:
        raise ValueError(f"crop {crop} leaves nothing of a {w}x{h} (width x height) image")
    return img[crop : h - crop, crop : w - crop, ...]


# --------------------------------------------------------------------------------------
# input checking
# --------------------------------------------------------------------------------------


def _size(a: np.ndarray) -> str:
    return f"{a.shape[1]}x{a.shape[0]}" + (f"x{a.shape[2]}" if a.ndim == 3 else "")


def _prepare(
    sr: np.ndarray,
    hr: np.ndarray,
    crop: int,
    y_channel: bool,
    round_y: bool,
    sr_name: Any,
    hr_name: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a pair and return the float64 planes the metric is computed on, ``(H, W, C)``."""
    sr_label = str(sr_name) if sr_name is not None else "SR"
    hr_label = str(hr_name) if hr_name is not None else "HR"
    sr, hr = np.asarray(sr), np.asarray(hr)
    for a, label in ((sr, sr_label), (hr, hr_label)):
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3)):
            raise RefsrError(label, f"expected an HxW or HxWx3 image, got array shape {a.shape}")
        if y_channel and (a.ndim != 3 or a.shape[2] != 3):
            raise RefsrError(label, f"Y-channel metrics need an RGB image, got shape {a.shape}")
    if sr.shape != hr.shape:
        raise RefsrError(
            f"{sr_label} vs {hr_label}",
            f"size mismatch: SR is {_size(sr)} but HR is {_size(hr)} (width x height[x channels])",
        )
    h, w = sr.shape[:2]
    if crop < 0 or 2 * crop >= min(h, w):
        raise RefsrError(
            sr_label, f"border crop {crop} leaves nothing of a {w}x{h} (width x height) image"
        )
    if y_channel:
        a, b = rgb2ycbcr_y(sr, round_y)[..., None], rgb2ycbcr_y(hr, round_y)[..., None]
    else:
        a, b = sr.astype(np.float64), hr.astype(np.float64)
        if a.ndim == 2:
            a, b = a[..., None], b[..., None]
    return crop_border(a, crop), crop_border(b, crop)


# --------------------------------------------------------------------------------------
# PSNR and SSIM
# --------------------------------------------------------------------------------------

DATA_RANGE = 255.0


def psnr(
    sr: np.ndarray,
    hr: np.ndarray,
    crop: int = 4,
    y_channel: bool = True,
    *,
    round_y: bool = True,
    sr_name: Any = None,
    hr_name: Any = None,
) -> float:
    """PSNR in dB (data range 255) after ``crop``; on MATLAB Y or on all RGB channels.

    In RGB mode the MSE is taken over all pixels and channels together (one PSNR, not a
    mean of per-channel PSNRs). Identical inputs give ``inf``. ``sr_name``/``hr_name``
    (paths or labels) name the inputs in errors.
    """
    a, b = _prepare(sr, hr, crop, y_channel, round_y, sr_name, hr_name)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(DATA_RANGE**2 / mse)


SSIM_WIN = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def gaussian_window_1d(size: int = SSIM_WIN, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian; its outer product is MATLAB's ``fspecial('gaussian', size, sigma)``."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``filter2(g' * g, x, 'valid')`` by two separable 1-D correlations in float64."""
    n = g.size
    t = np.lib.stride_tricks.sliding_window_view(x, n, axis=0) @ g  # (H-n+1, W)
    return np.lib.stride_tricks.sliding_window_view(t, n, axis=1) @ g  # (H-n+1, W-n+1)


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Wang et al.'s SSIM map for two 2-D float arrays on the 0..255 scale ('valid' size)."""
    g = gaussian_window_1d()
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    mu1, mu2 = _filter_valid(a, g), _filter_valid(b, g)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = _filter_valid(a * a, g) - mu1_sq
    s2 = _filter_valid(b * b, g) - mu2_sq
    s12 = _filter_valid(a * b, g) - mu1_mu2
    return ((2.0 * mu1_mu2 + c1) * (2.0 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))


def ssim(
    sr: np.ndarray,
    hr: np.ndarray,
    crop: int = 4,
    y_channel: bool = True,
    *,
    round_y: bool = True,
    sr_name: Any = None,
    hr_name: Any = None,
) -> float:
    """Mean SSIM (``ssim_index.m``) after ``crop``; RGB mode averages the per-channel means.

    The cropped image must be at least 11x11 (MATLAB's ``ssim_index`` returns -Inf for
    smaller ones; here that is a RefsrError).
    """
    a, b = _prepare(sr, hr, crop, y_channel, round_y, sr_name, hr_name)
    if min(a.shape[:2]) < SSIM_WIN:
        h, w = a.shape[:2]
        raise RefsrError(
            str(sr_name) if sr_name is not None else "SR",
            f"image is {w}x{h} after a {crop}-pixel border crop; SSIM needs at least "
            f"{SSIM_WIN}x{SSIM_WIN}",
        )
    return float(np.mean([ssim_map(a[..., c], b[..., c]).mean() for c in range(a.shape[2])]))


# --------------------------------------------------------------------------------------
# LPIPS
# --------------------------------------------------------------------------------------

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


def download_alexnet_weights() -> Path:
    """Download (hash-checked) torchvision's AlexNet into the torch hub cache; return its path."""
    import torch.hub

    torch.hub.load_state_dict_from_url(ALEXNET_URL, progress=True, check_hash=True)
    return alexnet_cache_path()


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
        self._random_trunk = False

    @classmethod
    def _random_backbone_for_tests(cls, seed: int = 0, device: str = "cpu") -> LPIPSMetric:
        """TESTS ONLY: real v0.1 heads on a randomly initialised trunk. Never report its values."""
        import torch

        m = cls(device=device, allow_download=False)
        torch.manual_seed(seed)
        m._model = m._build_skeleton()
        m._source = "RANDOM AlexNet trunk (tests only; not a valid LPIPS)"
        m._random_trunk = True
        m._built = True
        return m

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
                f"size mismatch: SR is {_size(sr)} but HR is {_size(hr)} (width x height[x channels])",
            )
        if not self.available:
            return math.nan
        import torch

        with torch.no_grad():
            d = self._model(self._to_tensor(sr), self._to_tensor(hr))
        return float(d.reshape(-1)[0].item())


class _Unavailable(Exception):
    pass


# --------------------------------------------------------------------------------------
# one pair, one protocol
# --------------------------------------------------------------------------------------


def score_pair(
    sr: np.ndarray,
    hr: np.ndarray,
    crop: int = 4,
    y_channel: bool = True,
    lpips_metric: LPIPSMetric | None = None,
    *,
    round_y: bool = True,
    sr_name: Any = None,
    hr_name: Any = None,
) -> dict[str, float]:
    """``{"psnr", "ssim", "lpips"}`` for one pair; ``lpips`` is NaN without an available metric."""
    kw = dict(round_y=round_y, sr_name=sr_name, hr_name=hr_name)
    out = {
        "psnr": psnr(sr, hr, crop, y_channel, **kw),
        "ssim": ssim(sr, hr, crop, y_channel, **kw),
        "lpips": math.nan,
    }
    if lpips_metric is not None:
        out["lpips"] = lpips_metric(sr, hr, sr_name=sr_name, hr_name=hr_name)
    return out


_RESIZE = ("matlab", "pil")
_ROUNDING = ("uint8", "none")


@dataclass(frozen=True)
class Protocol:
    """The evaluation protocol; ``describe()`` is the sentence every table caption carries.

    * ``scale``: SR factor; HR is mod-cropped to a multiple of it.
    * ``crop``: border pixels removed before PSNR/SSIM.
    * ``y_channel``: PSNR/SSIM on MATLAB ``rgb2ycbcr`` Y (else on RGB).
    * ``resize``: how LR is made from HR, ``"matlab"`` (bicubic port) or ``"pil"``.
    * ``rounding``: ``"uint8"`` — model outputs are rounded to uint8 before scoring (as when
      they are saved as PNG); ``"none"`` — float outputs are scored as they are.
    * ``round_y``: Y rounded to an integer as MATLAB does for uint8 input (BasicSR: False).
    """

    scale: int = 4
    crop: int = 4
    y_channel: bool = True
    resize: str = "matlab"
    rounding: str = "uint8"
    round_y: bool = True

    def __post_init__(self) -> None:
        self._validate("protocol")

    def _validate(self, where: str) -> None:
        for name in ("scale", "crop"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise RefsrError(f"{where}.{name}", f"must be an integer, got {v!r}")
        if self.scale < 1:
            raise RefsrError(f"{where}.scale", f"must be >= 1, got {self.scale}")
        if self.crop < 0:
            raise RefsrError(f"{where}.crop", f"must be >= 0, got {self.crop}")
        for name in ("y_channel", "round_y"):
            v = getattr(self, name)
            if not isinstance(v, bool):
                raise RefsrError(f"{where}.{name}", f"must be true or false, got {v!r}")
        if self.resize not in _RESIZE:
            raise RefsrError(f"{where}.resize", f"must be one of {_RESIZE}, got {self.resize!r}")
        if self.rounding not in _ROUNDING:
            raise RefsrError(
                f"{where}.rounding", f"must be one of {_ROUNDING}, got {self.rounding!r}"
            )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None, where: str = "protocol") -> Protocol:
        """Build from a config mapping (missing keys take the defaults; unknown keys are errors)."""
        cfg = dict(cfg or {})
        known = {f.name for f in fields(cls)}
        for key in cfg:
            if key not in known:
                raise RefsrError(
                    f"{where}.{key}", f"unknown key; expected one of {', '.join(sorted(known))}"
                )
        obj = cls.__new__(cls)
        defaults = cls()
        for f in fields(cls):
            object.__setattr__(obj, f.name, cfg.get(f.name, getattr(defaults, f.name)))
        obj._validate(where)
        return obj

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One sentence for table captions."""
        if self.y_channel:
            space = (
                "Y (BT.601, MATLAB rgb2ycbcr"
                + (", Y rounded" if self.round_y else ", Y unrounded")
                + ")"
            )
        else:
            space = "RGB"
        outputs = "uint8 outputs" if self.rounding == "uint8" else "unrounded float outputs"
        border = f"{self.crop}-px border cropped" if self.crop else "no border crop"
        lr = "MATLAB bicubic" if self.resize == "matlab" else "PIL bicubic"
        return (
            f"PSNR/SSIM on {space} of {outputs}, {border}; SSIM Gaussian 11x11 \u03c3=1.5 "
            f"(valid region); LR by {lr} \u00d71/{self.scale}; LPIPS AlexNet v0.1 on full RGB."
        )

    def prepare_output(self, sr: np.ndarray) -> np.ndarray:
        """Apply this protocol's output rounding to a model output on the 0..255 scale."""
        return quantize_uint8(sr) if self.rounding == "uint8" else np.asarray(sr)

    def score_pair(
        self,
        sr: np.ndarray,
        hr: np.ndarray,
        lpips_metric: LPIPSMetric | None = None,
        *,
        sr_name: Any = None,
        hr_name: Any = None,
    ) -> dict[str, float]:
        """:func:`score_pair` with this protocol's crop, colour space and rounding."""
        sr = self.prepare_output(sr)
        return score_pair(
            sr,
            hr,
            self.crop,
            self.y_channel,
            lpips_metric,
            round_y=self.round_y,
            sr_name=sr_name,
            hr_name=hr_name,
        )

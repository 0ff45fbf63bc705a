"""The evaluation protocol: how SR outputs are scored, stated in every table caption."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from refsr.core.errors import RefsrError
from refsr.evaluation.lpips import LPIPSMetric
from refsr.evaluation.metrics import Y_FORMULAS, psnr, quantize_uint8, ssim
from refsr.evaluation.stlpips import STLPIPSMetric


def score_pair(
    sr: np.ndarray,
    hr: np.ndarray,
    crop: int = 4,
    y_channel: bool = True,
    lpips_metric: LPIPSMetric | None = None,
    *,
    round_y: bool = True,
    y_formula: str = "matlab",
    stlpips_metric: STLPIPSMetric | None = None,
    sr_name: Any = None,
    hr_name: Any = None,
) -> dict[str, float]:
    """``{"psnr", "ssim", "lpips", "stlpips"}`` for one pair; a perceptual metric not given
    (or, for LPIPS, unavailable) is NaN."""
    kw = dict(round_y=round_y, y_formula=y_formula, sr_name=sr_name, hr_name=hr_name)
    out = {
        "psnr": psnr(sr, hr, crop, y_channel, **kw),
        "ssim": ssim(sr, hr, crop, y_channel, **kw),
        "lpips": math.nan,
        "stlpips": math.nan,
    }
    if lpips_metric is not None:
        out["lpips"] = lpips_metric(sr, hr, sr_name=sr_name, hr_name=hr_name)
    if stlpips_metric is not None:
        out["stlpips"] = stlpips_metric(sr, hr, sr_name=sr_name, hr_name=hr_name)
    return out


#: The evaluation protocols of the field, by the codebase that defines them. ``crop: "scale"``
#: means "as many pixels as the SR factor". Every field can be overridden in the config
#: (``evaluation.crop`` ...) or on ``refsr score``; table captions name the preset and every field.
PRESETS: dict[str, dict[str, Any]] = {
    # refsr's own: MATLAB rgb2ycbcr Y rounded as for uint8 input, 4-px border (SRNTT's MATLAB setup)
    "refsr": {"y_channel": True, "y_formula": "matlab", "round_y": True, "crop": 4},
    # TTSR utils.py calc_psnr / calc_ssim: Y = (65.738, 129.057, 25.064)/256 + 16, float, no crop
    "ttsr": {"y_channel": True, "y_formula": "ttsr", "round_y": False, "crop": 0},
    # BasicSR calculate_psnr/ssim(test_y_channel=True, crop_border=4): bgr2ycbcr Y unrounded
    "basicsr": {"y_channel": True, "y_formula": "matlab", "round_y": False, "crop": 4},
    # mmagic PSNR/SSIM defaults: RGB, crop_border = scale
    "mmagic": {"y_channel": False, "y_formula": "matlab", "round_y": False, "crop": "scale"},
}
OVERRIDABLE = ("y_channel", "y_formula", "round_y", "crop")
PRESET_SOURCES = {
    "refsr": "refsr's default (MATLAB rgb2ycbcr on uint8, as SRNTT's MATLAB evaluation)",
    "ttsr": "TTSR utils.py calc_psnr/calc_ssim",
    "basicsr": "BasicSR calculate_psnr/calculate_ssim, test_y_channel=True, crop_border=4",
    "mmagic": "mmagic PSNR/SSIM metrics, RGB, crop_border=scale",
}


_RESIZE = ("matlab", "pil")
_ROUNDING = ("uint8", "none")


@dataclass(frozen=True)
class Protocol:
    """The evaluation protocol; ``describe()`` is the sentence every table caption carries.

    * ``preset``: the :data:`PRESETS` entry it starts from; ``overrides`` the fields changed.
    * ``scale``: SR factor; HR is mod-cropped to a multiple of it.
    * ``crop``: border pixels removed before PSNR/SSIM.
    * ``y_channel``: PSNR/SSIM on a luma channel (else on RGB).
    * ``y_formula``: which luma (:data:`~refsr.evaluation.metrics.Y_FORMULAS`).
    * ``resize``: how LR is made from HR, ``"matlab"`` (bicubic port) or ``"pil"``.
    * ``rounding``: ``"uint8"`` — model outputs are rounded to uint8 before scoring (as when
      they are saved as PNG); ``"none"`` — float outputs are scored as they are.
    * ``round_y``: Y rounded to an integer as MATLAB does for uint8 input (BasicSR: False).
    """

    scale: int
    crop: int
    y_channel: bool
    resize: str
    rounding: str
    round_y: bool
    y_formula: str
    preset: str
    overrides: tuple[str, ...]

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
        if self.y_formula not in Y_FORMULAS:
            raise RefsrError(f"{where}.y_formula", f"must be one of {Y_FORMULAS}, got {self.y_formula!r}")
        if self.preset not in PRESETS:
            raise RefsrError(f"{where}.protocol", f"unknown preset {self.preset!r}; use one of "
                                                  f"{', '.join(PRESETS)}")
        if self.rounding not in _ROUNDING:
            raise RefsrError(
                f"{where}.rounding", f"must be one of {_ROUNDING}, got {self.rounding!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["overrides"] = list(self.overrides)
        return d

    def fields(self) -> str:
        """``crop=4, y_channel=true, ...``: every field that decides a number."""
        def v(x):
            return str(x).lower() if isinstance(x, bool) else str(x)
        return ", ".join(f"{k}={v(getattr(self, k))}" for k in OVERRIDABLE + ("rounding", "resize"))

    def describe(self) -> str:
        """One sentence for table captions: the preset, every field, and what they mean."""
        if self.y_channel:
            formula = ("MATLAB rgb2ycbcr, (65.481, 128.553, 24.966)/255 + 16" if self.y_formula == "matlab"
                       else "TTSR, (65.738, 129.057, 25.064)/256 + 16")
            space = f"Y ({formula}" + (", rounded" if self.round_y else ", unrounded") + ")"
        else:
            space = "RGB"
        outputs = "uint8 outputs" if self.rounding == "uint8" else "unrounded float outputs"
        border = f"{self.crop}-px border cropped" if self.crop else "no border crop"
        lr = "MATLAB bicubic" if self.resize == "matlab" else "PIL bicubic"
        changed = f"; overridden: {', '.join(self.overrides)}" if self.overrides else ""
        return (
            f"Protocol `{self.preset}` ({PRESET_SOURCES[self.preset]}{changed}; {self.fields()}): "
            f"PSNR/SSIM on {space} of {outputs}, {border}; SSIM Gaussian 11x11 \u03c3=1.5 "
            f"(valid region); LR by {lr} \u00d71/{self.scale}; LPIPS AlexNet v0.1 and ST-LPIPS "
            f"(shift-tolerant AlexNet) on full RGB."
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
        stlpips_metric: STLPIPSMetric | None = None,
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
            y_formula=self.y_formula,
            stlpips_metric=stlpips_metric,
            sr_name=sr_name,
            hr_name=hr_name,
        )


def resolve_protocol(preset: str, scale: int, resize: str, rounding: str = "uint8",
                     where: str = "evaluation", **overrides: Any) -> Protocol:
    """The protocol ``preset`` with ``overrides`` (a ``None`` value keeps the preset's field)."""
    if preset not in PRESETS:
        raise RefsrError(f"{where}.protocol", f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise RefsrError(f"{where}.{unknown[0]}", f"not a protocol field; fields: {', '.join(OVERRIDABLE)}")
    fields = dict(PRESETS[preset])
    changed = []
    for k, v in overrides.items():
        if v is not None and v != fields[k]:
            fields[k] = v
            changed.append(k)
    if fields["crop"] == "scale":
        fields["crop"] = scale
    p = Protocol(scale=scale, resize=resize, rounding=rounding, preset=preset,
                 overrides=tuple(changed), **fields)
    p._validate(where)
    return p


def protocol_from_config(config: Mapping[str, Any]) -> Protocol:
    """The evaluation protocol of a validated pipeline config (``scale``, ``resize``,
    ``evaluation.protocol`` and its field overrides)."""
    ev = config["evaluation"]
    return resolve_protocol(str(ev["protocol"]), int(config["scale"]), str(config["resize"]),
                            rounding="uint8",  # SR outputs are read back from PNG: always uint8
                            **{k: ev[k] for k in OVERRIDABLE})

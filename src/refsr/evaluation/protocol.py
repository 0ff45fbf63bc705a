"""The evaluation protocol: how SR outputs are scored, stated in every table caption."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from refsr.core.errors import RefsrError
from refsr.evaluation.lpips import LPIPSMetric
from refsr.evaluation.metrics import psnr, quantize_uint8, ssim


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

    scale: int
    crop: int
    y_channel: bool
    resize: str
    rounding: str
    round_y: bool

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


def protocol_from_config(config: Mapping[str, Any]) -> Protocol:
    """The evaluation protocol of a validated pipeline config (``scale``, ``resize``,
    ``evaluation.*``)."""
    ev = config["evaluation"]
    return Protocol(scale=int(config["scale"]), crop=int(ev["crop"]), y_channel=bool(ev["y_channel"]),
                    resize=str(config["resize"]),
                    rounding="uint8",  # SR outputs are read back from PNG: always uint8
                    round_y=bool(ev["round_y"]))

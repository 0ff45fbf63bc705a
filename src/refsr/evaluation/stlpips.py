"""ST-LPIPS: the shift-tolerant LPIPS of Ghildyal & Liu (ECCV 2022), the perceptual metric that
works offline.

The PyPI package ``stlpips-pytorch`` (BSD-2) ships its calibrated weights inside the wheel
(``weights/vST0.0/{alex,vgg}_shift_tolerant.pth``: trunk *and* linear layers), so nothing is
downloaded. It is reported as its own column ``stlpips``, never as LPIPS: the trunk is an
anti-aliased (blur-pooled) AlexNet/VGG retrained for shift tolerance, so its values are not
LPIPS values.

The package loads its weights with ``strict=False``, which would leave a missing tensor at its
random initialisation without a word. :class:`STLPIPSMetric` therefore reads the weight file
itself and checks that every parameter and buffer of the network is in it (the package registers
its linear layers twice, ``lin{k}`` and ``lins.{k}``: an alias of a loaded tensor counts as
loaded); anything missing or unreadable is a :class:`~refsr.core.errors.RefsrError`, never a
number. Like LPIPS it scores the full RGB image (no border crop), scaled from uint8 to [-1, 1].
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from refsr.core.errors import RefsrError

NETS = ("alex", "vgg")
#: Smallest image side each network scores: below it the blur-pooling's reflect padding fails
#: (measured on stlpips-pytorch 0.1.x). Smaller images get NaN with :attr:`STLPIPSMetric.reason`.
MIN_SIDE = {"alex": 21, "vgg": 18}
VARIANT = "shift_tolerant"
PACKAGE = "stlpips-pytorch"


def weights_file(net: str) -> Path:
    """The weight file inside the installed package for ``net``."""
    import stlpips_pytorch

    return Path(stlpips_pytorch.__file__).parent / "weights" / "vST0.0" / f"{net}_{VARIANT}.pth"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_fully_loaded(model, state: dict[str, Any], where: str) -> None:
    """Raise unless every tensor of ``model`` is in ``state`` (aliases of loaded tensors count)."""
    own = model.state_dict(keep_vars=True)
    loaded = {id(own[k]) for k in state if k in own}
    missing = [k for k, v in own.items() if k not in state and id(v) not in loaded]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s) ({', '.join(missing[:3])}"
                         f"{', ...' if len(missing) > 3 else ''})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])})")
        raise RefsrError(where, "ST-LPIPS weights do not cover the network: " + "; ".join(parts)
                         + "; refusing to score with randomly initialised layers")


class STLPIPSMetric:
    """``metric(sr, hr)`` -> ST-LPIPS distance (lower = more similar; identical images give 0);
    NaN for an image with a side under :data:`MIN_SIDE` (``skipped`` counts them, ``reason`` says why).

    Built on first use; ``source`` names the package version and the weight file's digest.
    """

    def __init__(self, net: str = "alex", device: str = "cpu") -> None:
        if net not in NETS:
            raise RefsrError("evaluation.stlpips_net", f"must be one of {', '.join(NETS)}, got {net!r}")
        self.net = net
        self.device = device
        self._model = None
        self._source: str | None = None
        self.skipped = 0  # images too small to score (NaN)
        self.reason: str | None = None

    @property
    def source(self) -> str:
        self._ensure()
        assert self._source is not None
        return self._source

    def _ensure(self) -> None:
        if self._model is not None:
            return
        import torch

        try:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from stlpips_pytorch import stlpips
        except ImportError as exc:
            raise RefsrError(PACKAGE, f"not importable ({exc}); it is a dependency of refsr: "
                                      "reinstall with `pip install -e .`") from None
        path = weights_file(self.net)
        if not path.is_file():
            raise RefsrError(path, "ST-LPIPS weight file missing from the installed package")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same one-line error
            raise RefsrError(path, f"cannot read ST-LPIPS weights ({exc})") from None
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = stlpips.LPIPS(net=self.net, variant=VARIANT, pretrained=False, verbose=False)
        check_fully_loaded(model, state, str(path))
        model.load_state_dict(state, strict=False)  # strictness checked above (aliases)
        self._model = model.to(self.device).eval()
        self._source = (f"{PACKAGE} {metadata.version(PACKAGE)}, {path.name} "
                        f"(sha256 {_sha256(path)[:12]})")

    def __call__(self, sr: np.ndarray, hr: np.ndarray, *, sr_name: Any = None,
                 hr_name: Any = None) -> float:
        import torch

        sr, hr = np.asarray(sr), np.asarray(hr)
        if sr.shape != hr.shape or sr.ndim != 3 or sr.shape[2] != 3:
            raise RefsrError(f"{sr_name or 'SR'} vs {hr_name or 'HR'}",
                             f"ST-LPIPS needs two RGB images of one size, got {sr.shape} and {hr.shape}")
        if min(sr.shape[:2]) < MIN_SIDE[self.net]:
            self.skipped += 1
            self.reason = (f"{sr_name or 'image'} is {sr.shape[1]}x{sr.shape[0]}: ST-LPIPS ({self.net}) "
                           f"needs both sides >= {MIN_SIDE[self.net]} px (NaN)")
            return math.nan
        self._ensure()

        def tensor(a: np.ndarray):
            t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1)[None]
            return (t / 127.5 - 1.0).to(self.device)

        with torch.no_grad():
            return float(self._model(tensor(sr), tensor(hr)).item())

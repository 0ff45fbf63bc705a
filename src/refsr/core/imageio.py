"""Reading and writing images with validation and documented conversions.

Every image enters the pipeline as ``uint8`` RGB ``(H, W, 3)``:

* grayscale (``L``, ``1``, ``I;16``, ``I``, ``F``) is replicated to three channels;
* an alpha channel (``RGBA``, ``LA``, ``PA``) is discarded (colour channels kept as stored);
* palette and CMYK images are converted to RGB by Pillow;
* 16-bit grayscale is rescaled to 8 bits (``round(v / 257)``); 32-bit integer grayscale
  likewise unless its maximum is <= 255 (then kept); float grayscale: see below;
  16-bit-per-channel colour is reduced by Pillow to its high byte;
* an EXIF orientation tag is applied (phone photos come out upright).

Float images (Pillow mode ``F``, e.g. a float32 TIFF) are in [0, 1] or in [0, 255], decided by a
rule that no single pixel can flip (issue 28, case 2: the maximum decided it, so a [0, 1] image
with one pixel at 1.0001 was divided by 255 a second time and came out black): the image is
taken as [0, 1] (scaled by 255) when its 99.9th percentile (:data:`FLOAT_UNIT_QUANTILE`, numpy's
``lower`` method, so the largest value never counts on its own: at most 0.1 % of the values, and
always the single largest, are ignored) is at most :data:`FLOAT_UNIT_LIMIT` = 1.5, else as
[0, 255]; either way the result is rounded and clipped to 0..255, so overshoot above 1 (or 255)
becomes white. The limit 1.5 leaves room for the overshoot of resampling a [0, 1] image; a
[0, 255] image whose 99.9th percentile is below 1.5 grey levels would be black anyway. A float
image with any non-finite value (NaN, +-inf) is refused in one line naming the file: there is
no grey level to give it.

Unreadable input raises :class:`~refsr.errors.RefsrError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from refsr.core.atomic import atomic_path
from refsr.core.errors import RefsrError

Image.MAX_IMAGE_PIXELS = 20000 * 20000

#: Extensions refsr reads as images (folder datasets) and writes (any case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: Smallest image side refsr works with: one 3x3 patch of VGG19 relu3_1, whose positions are
#: 4 image pixels apart. References and (upsampled) inputs below it are errors.
MIN_SIDE = 12

#: A float image is taken as [0, 1] when this quantile of its values (numpy's ``lower`` method) is
#: at most :data:`FLOAT_UNIT_LIMIT`, else as [0, 255] (see the module docstring).
FLOAT_UNIT_QUANTILE = 0.999
FLOAT_UNIT_LIMIT = 1.5


def float_scale(arr: np.ndarray, where) -> float:
    """The factor that takes float image ``arr`` to 0..255: 255 for a [0, 1] image, 1 for a
    [0, 255] one (the module docstring's rule; one pixel cannot flip it). Non-finite values are
    a one-line error naming ``where``."""
    bad = ~np.isfinite(arr)
    if bad.any():
        kinds = [name for name, hit in (("NaN", np.isnan(arr).any()), ("infinity", np.isinf(arr).any())) if hit]
        raise RefsrError(where, f"float image with {int(bad.sum())} non-finite value(s) "
                                f"({' and '.join(kinds)}); expected finite values in [0, 1] or [0, 255]")
    if arr.size == 0:
        return 255.0
    q = np.quantile(arr, FLOAT_UNIT_QUANTILE, method="lower")
    return 255.0 if q <= FLOAT_UNIT_LIMIT else 1.0


def _to_rgb8(im: Image.Image, where="image") -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        arr = np.clip(np.rint(arr * float_scale(arr, where)), 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if mode != "RGB":
        im = im.convert("RGB")  # drops alpha, expands gray / palette / CMYK
    return np.array(im, dtype=np.uint8)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read ``path`` as ``uint8`` RGB ``(H, W, 3)``; raise a one-line RefsrError otherwise."""
    path = Path(path)
    if not path.exists():
        raise RefsrError(path, "file not found")
    if path.is_dir():
        raise RefsrError(path, "is a directory, expected an image file")
    if not path.is_file():
        raise RefsrError(path, "is not a regular file, expected an image file")
    if path.stat().st_size == 0:
        raise RefsrError(path, "empty file, expected an image")
    try:
        with Image.open(path) as im:
            im.load()
            arr = _to_rgb8(ImageOps.exif_transpose(im), where=path)
    except UnidentifiedImageError:
        raise RefsrError(path, "not a recognised image format") from None
    except Image.DecompressionBombError as exc:  # not an OSError: would escape as a traceback
        raise RefsrError(path, f"image too large ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise RefsrError(path, f"unreadable or truncated image ({exc})") from None
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise RefsrError(path, f"image has no pixels (shape {arr.shape})")
    return arr


def check_min_size(arr: np.ndarray, where, what: str = "image", min_side: int = MIN_SIDE) -> None:
    """Raise if either side of ``arr`` is below ``min_side`` pixels (default :data:`MIN_SIDE`)."""
    h, w = arr.shape[:2]
    if min(h, w) < min_side:
        raise RefsrError(where, f"{what} is {w}x{h}, smaller than the minimum {min_side}x{min_side}")


def write_image(path: str | os.PathLike, arr: np.ndarray) -> None:
    """Atomically write a ``uint8`` RGB (or gray) array; the format follows the suffix, one
    of :data:`IMAGE_EXTENSIONS` (else a one-line error before anything is written)."""
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        raise TypeError(f"write_image expects uint8, got {arr.dtype}")
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        got = f"extension {Path(path).suffix!r}" if suffix else "no extension"
        raise RefsrError(path, f"unsupported output: {got}; use one of {', '.join(IMAGE_EXTENSIONS)}")
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp)


def to_float(arr: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1]."""
    return arr.astype(np.float32) / 255.0


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint8 (rounded, clipped)."""
    return np.clip(np.rint(np.asarray(arr, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def to_tensor(arr: np.ndarray, device=None):
    """uint8 ``(H, W, 3)`` -> float32 tensor ``(1, 3, H, W)`` in [0, 1]."""
    import torch

    t = torch.from_numpy(np.array(arr, copy=True, order="C")).permute(2, 0, 1)[None].float().div_(255.0)
    return t.to(device) if device is not None else t


def from_tensor(t) -> np.ndarray:
    """Tensor ``(1, 3, H, W)`` or ``(3, H, W)`` in [0, 1] -> uint8 ``(H, W, 3)`` (rounded, clipped)."""
    if t.dim() == 4:
        t = t[0]
    return to_uint8(t.detach().float().cpu().permute(1, 2, 0).numpy())

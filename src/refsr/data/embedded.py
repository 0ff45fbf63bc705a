"""The default dataset, built offline from photographs shipped inside scikit-image.

Test groups (one per photo in ``cfg['test_photos']``): the HR is an
``hr_size``-square crop. References are made at five decreasing similarity
levels by *controlled* changes, all from the same photograph except L5:

====  =========================================================================
L1    ``motorcycle``: the real other stereo view (right camera), window moved by
      the median disparity so the content overlaps. Other photos: 1/8 window
      shift, 2 % perspective jitter, same scale, no photometric change.
L2    1/4 window shift, 5 % perspective jitter, content at 0.9x scale, ±3 % colour gains.
L3    0.45 window shift, 8 % jitter, 0.8x scale, gamma 0.85, ±8 % gains.
L4    0.65 window shift, 10 % jitter, 0.65x scale, gamma 0.75, ±12 % gains, blur σ = 1.
L5    an unrelated photograph (the next test photo in the list), random window.
====  =========================================================================

"Window shift" is the distance between the HR window's centre and the
reference window's centre in units of the window side, so the shared content
falls as the level rises. "Perspective jitter" moves each corner of the
reference window by up to that fraction of the side (a homography, i.e. a
change of viewpoint of a planar scene); "scale" < 1 means the reference
window covers 1/scale times more of the photo, so its content is smaller.

Training pairs come only from ``cfg['train_photos']`` (disjoint from the test
photos): a random ``train_size`` crop as input and, as its reference, a
window made like L1..L3 (level drawn at random) of the same photo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import skimage.data

from refsr.core.errors import RefsrError
from refsr.core.imageio import write_image
from refsr.data.checks import EMBEDDED_PHOTOS, check_embedded
from refsr.data.layout import LEVELS, Dataset, TestGroup, TrainPair
from refsr.data.resize import modcrop

STEREO = "motorcycle"


@dataclass(frozen=True)
class LevelSpec:
    """How a synthetic reference of one similarity level is made."""

    shift: float  # centre offset / window side
    jitter: float  # max corner displacement / window side
    scale: float  # content scale of the reference relative to the HR
    gamma: float = 1.0
    gain: float = 0.0  # max per-channel gain deviation
    blur: float = 0.0  # Gaussian sigma in pixels


LEVEL_SPECS = {
    "L1": LevelSpec(shift=0.125, jitter=0.02, scale=1.0),
    "L2": LevelSpec(shift=0.25, jitter=0.05, scale=0.9, gain=0.03),
    "L3": LevelSpec(shift=0.45, jitter=0.08, scale=0.8, gamma=0.85, gain=0.08),
    "L4": LevelSpec(shift=0.65, jitter=0.10, scale=0.65, gamma=0.75, gain=0.12, blur=1.0),
}


def load_photo(name: str) -> np.ndarray:
    """A scikit-image photo (one of ``EMBEDDED_PHOTOS``) as uint8 RGB; ``motorcycle`` is the
    stereo pair's left view."""
    if name not in EMBEDDED_PHOTOS:
        raise RefsrError("datasets.embedded", f"unknown photo {name!r}; scikit-image ships "
                                              f"{', '.join(EMBEDDED_PHOTOS)}")
    if name == STEREO:
        return skimage.data.stereo_motorcycle()[0]
    loader = getattr(skimage.data, name)
    img = np.asarray(loader())
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.shape[2] == 4:
        img = img[..., :3]
    if img.dtype != np.uint8:
        raise RefsrError("datasets.embedded", f"photo {name!r} is {img.dtype}, expected uint8")
    return np.ascontiguousarray(img)


def _best_direction(center: np.ndarray, shape: tuple[int, int], rng: np.random.RandomState) -> np.ndarray:
    """Unit vector (dy, dx) among 8 directions with the most room, ties broken at random."""
    h, w = shape
    angles = np.arange(8) * (math.pi / 4) + rng.uniform(0, 0.3)
    dirs = np.stack([np.sin(angles), np.cos(angles)], axis=1)
    room = []
    for dy, dx in dirs:
        ry = (h - center[0]) / dy if dy > 1e-9 else (center[0] / -dy if dy < -1e-9 else np.inf)
        rx = (w - center[1]) / dx if dx > 1e-9 else (center[1] / -dx if dx < -1e-9 else np.inf)
        room.append(min(ry, rx))
    return dirs[int(np.argmax(room))]


def known_view(photo: np.ndarray, center: np.ndarray, side: int, spec: LevelSpec,
               rng: np.random.RandomState, angle: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A ``side``-square view of ``photo`` around ``center`` as ``spec`` prescribes, rotated by
    ``angle`` degrees about its centre, and the homography from view pixels to photo pixels
    (the known correspondence behind the match-accuracy study)."""
    half = side / spec.scale / 2.0
    cy, cx = center
    offsets = np.array([[-half, -half], [half, -half], [half, half], [-half, half]], dtype=np.float64)
    t = math.radians(angle)
    offsets = offsets @ np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
    src = offsets + [cx, cy]
    src += rng.uniform(-1, 1, size=src.shape) * spec.jitter * side / spec.scale
    dst = np.array([[0, 0], [side, 0], [side, side], [0, side]], dtype=np.float64)
    hom = cv2.getPerspectiveTransform(dst.astype(np.float32), src.astype(np.float32))
    out = cv2.warpPerspective(photo, hom, (side, side), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT_101)
    return _photometric(out, spec, rng), hom


def _warp_window(photo: np.ndarray, center: np.ndarray, side: int, spec: LevelSpec,
                 rng: np.random.RandomState) -> np.ndarray:
    """Render a ``side``-square view of ``photo`` around ``center`` as ``spec`` prescribes."""
    return known_view(photo, center, side, spec, rng)[0]


def _photometric(img: np.ndarray, spec: LevelSpec, rng: np.random.RandomState) -> np.ndarray:
    x = img.astype(np.float64) / 255.0
    if spec.gamma != 1.0:
        x = x ** spec.gamma
    if spec.gain:
        x = x * (1.0 + rng.uniform(-spec.gain, spec.gain, size=3))
    if spec.blur:
        x = cv2.GaussianBlur(x, (0, 0), spec.blur)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _hr_center(shape: tuple[int, int], side: int) -> np.ndarray:
    h, w = shape
    if min(h, w) < side:
        raise RefsrError("datasets.embedded.hr_size", f"{side} exceeds a photo of {w}x{h}")
    return np.array([h / 2.0, w / 2.0])


def _crop(img: np.ndarray, center: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    y0 = int(np.clip(round(center[0] - side / 2), 0, h - side))
    x0 = int(np.clip(round(center[1] - side / 2), 0, w - side))
    return img[y0:y0 + side, x0:x0 + side]


def _stereo_l1(center: np.ndarray, side: int) -> np.ndarray:
    """The right view's window showing the HR window's content (median disparity shift)."""
    _, right, disp = skimage.data.stereo_motorcycle()
    hw = _crop(disp, center, side)
    d = float(np.median(hw[np.isfinite(hw)])) if np.isfinite(hw).any() else 0.0
    return _crop(right, center - np.array([0.0, d]), side)


def make_references(photo_name: str, photo: np.ndarray, unrelated: np.ndarray, side: int,
                    rng: np.random.RandomState) -> dict[str, np.ndarray]:
    """References L1..L5 for the HR window of side ``side`` at the photo's centre."""
    center = _hr_center(photo.shape[:2], side)
    direction = _best_direction(center, photo.shape[:2], rng)
    refs = {}
    for level, spec in LEVEL_SPECS.items():
        refs[level] = _warp_window(photo, center + direction * spec.shift * side, side, spec, rng)
    if photo_name == STEREO:
        refs["L1"] = _stereo_l1(center, side)
    uh, uw = unrelated.shape[:2]
    ucenter = np.array([rng.uniform(side / 2, uh - side / 2), rng.uniform(side / 2, uw - side / 2)])
    refs["L5"] = _crop(unrelated, ucenter, side)
    assert tuple(refs) == LEVELS or sorted(refs) == list(LEVELS)
    return {lv: refs[lv] for lv in LEVELS}


def make_train_pair(photo: np.ndarray, side: int, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """A random ``side`` crop and a reference made like L1..L3 of the same photo."""
    h, w = photo.shape[:2]
    if min(h, w) < side:
        raise RefsrError("datasets.embedded.train_size", f"{side} exceeds a training photo of {w}x{h}")
    center = np.array([rng.uniform(side / 2, h - side / 2), rng.uniform(side / 2, w - side / 2)])
    level = ("L1", "L2", "L3")[rng.randint(3)]
    spec = LEVEL_SPECS[level]
    direction = _best_direction(center, (h, w), rng)
    ref = _warp_window(photo, center + direction * spec.shift * side, side, spec, rng)
    return _crop(photo, center, side), ref


def build_embedded(name: str, cfg: dict, out_dir: Path, scale: int = 4) -> Dataset:
    """Write the embedded dataset's images under ``out_dir/images`` and return it."""
    test_photos, train_photos = check_embedded(name, cfg)
    side = int(cfg["hr_size"]) // scale * scale
    seed = int(cfg.get("seed", 0))
    out_dir = Path(out_dir)
    ds = Dataset(name=name, root=out_dir)
    photos = {p: load_photo(p) for p in test_photos}
    for i, pname in enumerate(test_photos):
        rng = np.random.RandomState(seed * 1000 + i)
        photo = photos[pname]
        unrelated = photos[test_photos[(i + 1) % len(test_photos)]]
        if len(test_photos) == 1:
            unrelated = load_photo(train_photos[0])
        hr = modcrop(_crop(photo, _hr_center(photo.shape[:2], side), side), scale)
        refs = make_references(pname, photo, unrelated, side, rng)
        gdir = out_dir / "images" / "test" / pname
        write_image(gdir / "HR.png", hr)
        group = TestGroup(pname, hr=gdir / "HR.png")
        for level, ref in refs.items():
            write_image(gdir / f"{level}.png", ref)
            group.refs[level] = gdir / f"{level}.png"
            group.levels[level] = level
        ds.groups.append(group)
    n_pairs = int(cfg["train_pairs"])
    tside = int(cfg["train_size"]) // scale * scale
    train = [load_photo(p) for p in train_photos]
    rng = np.random.RandomState(seed * 1000 + 999)
    for k in range(n_pairs):
        photo = train[k % len(train)]
        inp, ref = make_train_pair(photo, tside, rng)
        pdir = out_dir / "images" / "train"
        write_image(pdir / f"{k:05d}_input.png", inp)
        write_image(pdir / f"{k:05d}_ref.png", ref)
        ds.train.append(TrainPair(f"{k:05d}", pdir / f"{k:05d}_input.png", pdir / f"{k:05d}_ref.png"))
    return ds

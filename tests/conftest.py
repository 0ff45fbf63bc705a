"""Shared fixtures: offline VGG19 weights, the repository root, tiny images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_VGG = ROOT.parent / "shared" / "weights" / "vgg19_imagenet_conv1_1-conv3_1.pth"

if "REFSR_VGG19_WEIGHTS" not in os.environ and SHARED_VGG.is_file():
    os.environ["REFSR_VGG19_WEIGHTS"] = str(SHARED_VGG)


@pytest.fixture(scope="session")
def vgg_weights() -> str:
    """Path of offline VGG19 (conv1_1..conv3_1) weights; skip when none are available."""
    path = os.environ.get("REFSR_VGG19_WEIGHTS")
    if not path or not Path(path).is_file():
        pytest.skip("no offline VGG19 weights (set REFSR_VGG19_WEIGHTS)")
    return path


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture
def rng() -> np.random.RandomState:
    return np.random.RandomState(0)


@pytest.fixture(scope="session")
def vgg(vgg_weights):
    """VGG19 up to relu3_1 with the offline weights (skips when there are none)."""
    from refsr.features.vgg import load_vgg19

    return load_vgg19(("relu1_1", "relu2_1", "relu3_1"))


# ----------------------------------------------------------------------------- config helpers
# Code receives validated config values (defaults from the schema); tests build theirs the
# same way, overriding only what they change.


def arch(**overrides) -> dict:
    """The schema's ``arch`` section with ``overrides``."""
    from refsr.core.config import defaults

    return {**defaults("arch"), **overrides}


def train_config(model: str, recipe: str = "refsr", **overrides):
    """:class:`~refsr.training.config.TrainConfig` of ``model`` in ``recipe`` from the schema's
    defaults, with fields replaced by ``overrides`` (``arch``/``loss``/``disc``/``options``
    dicts are merged)."""
    import dataclasses

    from refsr.core.config import validate
    from refsr.models import registry
    from refsr.training.config import config_for

    cfg = config_for(model, validate({"recipe": recipe}))
    for key in ("arch", "loss", "disc", "options"):
        if key in overrides:
            merged = {**getattr(cfg, key), **overrides.pop(key)}
            if key == "arch":
                merged = {k: merged[k] for k in registry.get(model, recipe=cfg.recipe).arch_keys}
            overrides[key] = merged
    return dataclasses.replace(cfg, **overrides)


def protocol(**overrides):
    """The default evaluation protocol with fields replaced by ``overrides``."""
    import dataclasses

    from refsr.core.config import defaults
    from refsr.evaluation.protocol import protocol_from_config

    return dataclasses.replace(protocol_from_config(defaults()), **overrides)


def write_tiers_csv(path, levels_by_group):
    """A tiers CSV (the tiers stage's columns) where each group has one reference, named after
    its level, at each level of ``levels_by_group[group]`` (an empty list: no reference)."""
    import pandas as pd

    from refsr.similarity.tiers import assign_tiers, write_tiers

    rows = [{"group": g, "ref": lv, "level": lv, "local_inliers": 10 - i, "vgg_cosine": 0.9 - 0.1 * i}
            for g, levels in levels_by_group.items() for i, lv in enumerate(levels)]
    df = pd.DataFrame(rows, columns=["group", "ref", "level", "local_inliers", "vgg_cosine"])
    write_tiers(assign_tiers(df, "per_image"), path)
    return path


# ----------------------------------------------------------------------------- real photos
# A small `folder` dataset from photos scikit-image ships: each HR image is a window of a
# photo; its candidates, from the most to the least related: the same window shifted a little
# (for the motorcycle, the real right stereo view), shifted more, a larger window half over
# it, another region of the photo, then unrelated photos.

PHOTO_GROUPS = {"motorcycle": (170, 300), "astronaut": (40, 180), "coffee": (200, 50)}
UNRELATED = ("rocket", "camera", "chelsea")


def _photo(name: str):
    import numpy as np
    import skimage.data

    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0]
    img = getattr(skimage.data, name)()
    return np.dstack([img] * 3) if img.ndim == 2 else img


def candidate_windows(name: str, y: int, x: int, side: int):
    """(ref name, image) candidates of the HR window ``(y, x, side)`` of photo ``name``,
    most related first: 7 of them."""
    import numpy as np
    import skimage.data

    photo = _photo(name)
    s, d = side, side // 16
    ry = y + 2 * s if y + 3 * s <= photo.shape[0] else max(0, y - 2 * s)  # another region
    near = (skimage.data.stereo_motorcycle()[1][y + d:y + d + s, x - 4 * d:x - 4 * d + s]
            if name == "motorcycle" else photo[y + d:y + d + s, x + 2 * d:x + 2 * d + s])
    out = [("near", near),
           ("shifted", photo[y + 4 * d:y + 4 * d + s, x + 5 * d:x + 5 * d + s]),
           ("partial", photo[y + s // 2:y + s // 2 + s + 2 * d, x + s // 2:x + s // 2 + s + 2 * d]),
           ("region", photo[ry:ry + s, x + s:x + 2 * s])]
    out += [(f"other_{u}", _photo(u)[100:100 + s + 8, 120:120 + s + 8]) for u in UNRELATED]
    return [(r, np.ascontiguousarray(img)) for r, img in out]


def make_photo_folder(root, counts, side=96):
    """``root/hr/{group}.png`` and ``root/refs/{group}/*.png``; ``counts`` maps a group (a key
    of :data:`PHOTO_GROUPS`) to its number of candidates: 0..7, taken from
    :func:`candidate_windows` keeping both ends (the nearest and the unrelated ones).
    Returns {group: [ref names, most related first]}."""
    from PIL import Image

    hr_dir, refs_dir = root / "hr", root / "refs"
    hr_dir.mkdir(parents=True, exist_ok=True)
    chosen = {}
    for name, n in counts.items():
        y, x = PHOTO_GROUPS[name]
        Image.fromarray(_photo(name)[y:y + side, x:x + side]).save(hr_dir / f"{name}.png")
        cands = candidate_windows(name, y, x, side)
        keep = {3: [0, 2, 4], 5: [0, 1, 2, 4, 5]}.get(n, list(range(n)))
        (refs_dir / name).mkdir(parents=True, exist_ok=True)
        chosen[name] = [cands[i][0] for i in keep]
        for i in keep:
            Image.fromarray(cands[i][1]).save(refs_dir / name / f"{cands[i][0]}.png")
    return chosen

"""A dataset's config checks that cost nothing (no image is opened), run twice.

The dataset builders start with them, and the workflow runs them when it builds the DAG
(:func:`check_datasets`, from ``workflow/rules/common.smk``), so ``snakemake -n`` fails
with the one line the ``build_dataset`` job would give: a folder that does not exist, a
file that is a folder, overlapping or unknown embedded photos, a standard test set without
the sub-folders of its published layout. This module imports no
image library, so the check adds nothing measurable to the DAG build.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from refsr.core.config import exactly_one_of, validate
from refsr.core.errors import RefsrError

#: Photos shipped inside scikit-image (no download) that load as 8-bit gray, RGB or RGBA
#: images; ``motorcycle`` is the left view of ``stereo_motorcycle`` (its right view is the L1
#: reference). tests/test_config_checks.py loads every one.
EMBEDDED_PHOTOS = (
    "astronaut", "brick", "camera", "cat", "cell", "checkerboard", "chelsea", "clock", "coffee",
    "coins", "colorwheel", "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "logo",
    "microaneurysms", "moon", "motorcycle", "page", "retina", "rocket", "text",
)
#: Names of the same photograph (skimage.data.cat is chelsea): disjointness is by photograph.
PHOTO_ALIASES = {"cat": "chelsea"}


def cfg_key(name: str, key: str) -> str:
    """The config key path used in error messages, e.g. ``datasets.cufed5.test_dir``."""
    return f"datasets.{name}.{key}"


def _given(cfg: Mapping[str, Any], key: str) -> bool:
    return cfg.get(key) not in (None, "")


def cfg_dir(cfg: Mapping[str, Any], name: str, key: str, required: bool = True) -> Path | None:
    """``cfg[key]`` as an absolute existing directory (``~`` expanded), or None if optional and unset."""
    if not _given(cfg, key):
        if required:
            raise RefsrError(cfg_key(name, key), "required: the path of a folder")
        return None
    path = Path(os.path.expanduser(str(cfg[key]))).resolve()
    if not path.exists():
        raise RefsrError(path, f"folder not found (from {cfg_key(name, key)})")
    if not path.is_dir():
        raise RefsrError(path, f"not a folder (from {cfg_key(name, key)})")
    return path


def cfg_file(cfg: Mapping[str, Any], name: str, key: str) -> Path:
    """``cfg[key]`` as an absolute existing file."""
    if not _given(cfg, key):
        raise RefsrError(cfg_key(name, key), "required: the path of a file")
    path = Path(os.path.expanduser(str(cfg[key]))).resolve()
    if not path.exists():
        raise RefsrError(path, f"file not found (from {cfg_key(name, key)})")
    if not path.is_file():
        raise RefsrError(path, f"not a file (from {cfg_key(name, key)})")
    return path


def cfg_count(cfg: Mapping[str, Any], name: str, key: str, default: int | None = None) -> int | None:
    """``cfg[key]`` as a positive int (``None``/missing gives ``default``)."""
    value = cfg.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RefsrError(cfg_key(name, key), f"must be a positive integer, got {value!r}")
    return value


def check_embedded(name: str, cfg: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """``(test_photos, train_photos)``: known photos, none listed twice, the lists disjoint."""
    lists = {}
    for key in ("test_photos", "train_photos"):
        photos = [str(p) for p in cfg.get(key) or []]
        if not photos:
            raise RefsrError(cfg_key(name, key), "required: a list of at least one photo")
        unknown = [p for p in photos if p not in EMBEDDED_PHOTOS]
        if unknown:
            raise RefsrError(cfg_key(name, key), f"unknown photo(s) {unknown}; scikit-image ships "
                                                 f"{', '.join(EMBEDDED_PHOTOS)}")
        seen: dict[str, str] = {}
        for p in photos:
            photo = PHOTO_ALIASES.get(p, p)
            if photo in seen:
                same = "" if seen[photo] == p else f" (as {seen[photo]!r}: the same photo)"
                raise RefsrError(cfg_key(name, key), f"lists {p!r} twice{same}")
            seen[photo] = p
        lists[key] = photos
    test, train = lists["test_photos"], lists["train_photos"]
    test_ids = {PHOTO_ALIASES.get(p, p) for p in test}
    overlap = sorted(p for p in train if PHOTO_ALIASES.get(p, p) in test_ids)
    if overlap:
        aliases = sorted({f"{a} is {b}" for a, b in PHOTO_ALIASES.items() if a in test + train})
        note = f" ({'; '.join(aliases)})" if aliases else ""
        raise RefsrError(cfg_key(name, "train_photos"), f"overlaps the test photos: {overlap}{note}")
    return test, train


def check_cufed5(name: str, cfg: Mapping[str, Any]) -> tuple[Path, Path | None]:
    """``(test_dir, train_dir)``, both existing folders (train_dir optional); valid counts."""
    test_dir = cfg_dir(cfg, name, "test_dir")
    train_dir = cfg_dir(cfg, name, "train_dir", required=False)
    cfg_count(cfg, name, "groups")
    cfg_count(cfg, name, "max_train_pairs")
    return test_dir, train_dir


def check_folder(name: str, cfg: Mapping[str, Any]) -> tuple[Path, Path | None, Path | None, Path | None]:
    """``(hr_dir, refs_dir, pairs_csv, train_dir)``: exactly one of refs_dir / pairs_csv, every
    given path an existing folder (the CSV a file); valid counts."""
    hr_dir = cfg_dir(cfg, name, "hr_dir")
    keys = ("refs_dir", "pairs_csv")
    present = [k for k in keys if _given(cfg, k)]
    if len(present) != 1:
        raise RefsrError(f"config key datasets.{name}", exactly_one_of(keys, present))
    refs_dir = cfg_dir(cfg, name, "refs_dir", required=False)
    pairs_csv = cfg_file(cfg, name, "pairs_csv") if _given(cfg, "pairs_csv") else None
    train_dir = cfg_dir(cfg, name, "train_dir", required=False)
    cfg_count(cfg, name, "groups")
    cfg_count(cfg, name, "max_train_pairs")
    return hr_dir, refs_dir, pairs_csv, train_dir


# --------------------------------------------------------------------------- the standard test sets

#: Sun80's layout as RefSR test code reads it (MASA-SR's dataloader/dataset.py): the HR images, and one
#: folder of scene matches per HR image named by the HR image's file name (``x.jpg/``).
SUN80_HR = "Sun_Hays_SR_groundtruth"
SUN80_MATCHES = "Sun_Hays_SR_scenematches"
#: WR-SR's published layout (C2-Matching, datasets/DATASETS.md): ``input/001.png`` and ``ref/001_ref.png``.
WRSR_INPUT = "input"
WRSR_REF = "ref"


def dataset_config(name: str, cfg: Mapping[str, Any]) -> dict:
    """Dataset ``name``'s section ``cfg`` checked against the schema, its defaults filled in.

    The pipeline hands the builders validated sections already; a library caller's (paths may
    be ``os.PathLike``) gets the same defaults and the same one-line errors from the schema.
    """
    section = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in cfg.items()}
    config = validate({"datasets": {name: section}, "train_dataset": name, "eval_datasets": [name]})
    return config["datasets"][name]


def _sub_dir(parent: Path, sub: str, what: str) -> Path:
    path = parent / sub
    if not path.is_dir():
        state = "not a folder" if path.exists() else "folder not found"
        raise RefsrError(path, f"{state}: {what}")
    return path


def _check_groups(cfg: Mapping[str, Any], name: str) -> None:
    if cfg["groups"] is not None and cfg["groups"] > cfg["images"]:
        raise RefsrError(cfg_key(name, "groups"),
                         f"{cfg['groups']} is more than the {cfg['images']} images of the set")


def check_sun80(name: str, cfg: Mapping[str, Any]) -> tuple[dict, Path, Path]:
    """``(cfg, hr_dir, matches_dir)``: the validated section and the two folders of a Sun80 copy."""
    cfg = dataset_config(name, cfg)
    _check_groups(cfg, name)
    test_dir = cfg_dir(cfg, name, "test_dir")
    layout = f"a Sun80 folder holds {SUN80_HR}/ (the HR images) and {SUN80_MATCHES}/ (their scene matches)"
    hr_dir = _sub_dir(test_dir, SUN80_HR, layout)
    matches_dir = _sub_dir(test_dir, SUN80_MATCHES, layout)
    return cfg, hr_dir, matches_dir


def check_hr_only(name: str, cfg: Mapping[str, Any]) -> tuple[dict, Path]:
    """``(cfg, test_dir)`` of an HR-only set (``urban100``, ``manga109``)."""
    cfg = dataset_config(name, cfg)
    _check_groups(cfg, name)
    return cfg, cfg_dir(cfg, name, "test_dir")


def check_wrsr(name: str, cfg: Mapping[str, Any]) -> tuple[dict, Path, Path]:
    """``(cfg, input_dir, ref_dir)`` of a WR-SR copy."""
    cfg = dataset_config(name, cfg)
    test_dir = cfg_dir(cfg, name, "test_dir")
    layout = f"a WR-SR folder holds {WRSR_INPUT}/ (001.png ..) and {WRSR_REF}/ (001_ref.png ..)"
    return cfg, _sub_dir(test_dir, WRSR_INPUT, layout), _sub_dir(test_dir, WRSR_REF, layout)


CHECKS = {"embedded": check_embedded, "cufed5": check_cufed5, "folder": check_folder,
          "sun80": check_sun80, "urban100": check_hr_only, "manga109": check_hr_only,
          "wrsr": check_wrsr}


def check_dataset(name: str, cfg: Mapping[str, Any]) -> None:
    """The cheap checks of dataset ``name`` of its kind; a one-line error for an unknown kind."""
    kind = cfg.get("kind")
    if kind not in CHECKS:
        raise RefsrError(cfg_key(name, "kind"), f"unknown dataset kind {kind!r} ({', '.join(CHECKS)})")
    CHECKS[kind](name, cfg)


def check_datasets(config: Mapping[str, Any]) -> None:
    """:func:`check_dataset` on every dataset a validated config uses (``train_dataset`` and
    ``eval_datasets``; others defined but unused are not looked at)."""
    used = dict.fromkeys([config["train_dataset"], *config["eval_datasets"]])
    for name in used:
        check_dataset(name, config["datasets"][name])


#: Dataset kinds that can hold training pairs, and the key that gives them (``None``: always).
TRAIN_PAIRS_KEY = {"embedded": None, "folder": "train_dir", "cufed5": "train_dir"}


def check_training_data(config: Mapping[str, Any], trained: Sequence[str]) -> None:
    """When the config trains models here (``trained``: :func:`refsr.models.registry.to_train`,
    which calls this from :func:`~refsr.models.registry.check_config`), its ``train_dataset``
    must hold training pairs: a one-line error at DAG build, not in the job."""
    if not trained:
        return
    name = config["train_dataset"]
    cfg = config["datasets"][name]
    kind = cfg.get("kind")
    why = f"this config trains {', '.join(trained)} on train_dataset {name}"
    if kind not in TRAIN_PAIRS_KEY:
        raise RefsrError("config key train_dataset", f"{why}, a {kind} test set without training pairs; name a "
                                                     f"dataset with them (embedded, or folder/cufed5 with "
                                                     f"train_dir), or import the weights (pretrained)")
    key = TRAIN_PAIRS_KEY[kind]
    if key is not None and not _given(cfg, key):
        raise RefsrError(cfg_key(name, key), f"required: {why}, which has no training pairs without "
                                             f"{key} (a folder of input/ and ref/)")

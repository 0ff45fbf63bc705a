"""Any method's own outputs: SR images made elsewhere, evaluated like a model (config ``external``).

A researcher who has SR images of a method refsr does not run (another codebase, a diffusion
RefSR, a paper's released results) names their folder in the config::

    external:
      theirs:
        kind: outputs
        path: released/theirs/{dataset}     # {dataset}: the evaluated dataset's name
        pattern: "{group}_{level}.png"      # or a layout name, see LAYOUTS
        levels: [L1]                        # what the folder has (default: evaluation.levels)
        level_names: {L1: "1"}              # how its file names spell a level
        label: Theirs
        source: https://example.org/their-results

Where an image is: ``path / pattern`` with ``{group}`` the test image's name in the dataset's
manifest (CUFED5: ``000`` .. ``125``), ``{index}`` its 0-based position in the manifest and
``{level}`` the level as ``level_names`` spells it (default refsr's names). A pattern without
``{level}`` stands for exactly one level. The rule ``external_outputs`` checks every (image,
level) cell the dataset has at those levels (a structurally absent cell, a level without a
reference for that image, is not expected) and copies the images into the pipeline's own layout
(``results/sr/{dataset}/{name}/{group}/{level}.png``), where the rule evaluate scores them like
any model's: the same CSV, byte for byte, as for the pipeline's own SR images. Missing,
unreadable and mis-sized images are all listed in one line; at DAG build too, once the dataset
and its tiers exist (:func:`problems`).

No torch here: the workflow checks the entries while it builds the DAG.
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image, UnidentifiedImageError

from refsr.core.atomic import atomic_dir
from refsr.core.errors import RefsrError
from refsr.core.imageio import read_image, write_image
from refsr.core.progress import progress
from refsr.data.layout import Dataset
from refsr.similarity.tiers import absent_levels

#: Layout name -> pattern, for the layouts met most often.
LAYOUTS = {"refsr": "{group}/{level}.png", "flat": "{group}_{level}.png", "by_level": "{level}/{group}.png"}
#: Fields a pattern may use.
FIELDS = ("group", "index", "level")
#: The one kind of external method so far: a folder of SR images.
KINDS = ("outputs",)


def _fields(text: str, where: str) -> list[str]:
    try:
        return [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as err:
        raise RefsrError(where, f"not a valid pattern ({err})") from None


@dataclass(frozen=True)
class ExternalOutputs:
    """One ``external`` entry of kind ``outputs`` (see the module docstring)."""

    name: str
    path: str
    pattern: str = "refsr"
    levels: tuple[str, ...] | None = None
    level_names: Mapping[str, str] = field(default_factory=dict)
    label: str | None = None
    source: str = ""

    @classmethod
    def from_config(cls, name: str, spec: Mapping) -> ExternalOutputs:
        levels = spec.get("levels")
        return cls(name=name, path=str(spec["path"]), pattern=str(spec.get("pattern", "refsr")),
                   levels=tuple(levels) if levels else None, level_names=dict(spec.get("level_names") or {}),
                   label=spec.get("label"), source=str(spec.get("source") or ""))

    @property
    def where(self) -> str:
        return f"config key external.{self.name}"

    @property
    def template(self) -> str:
        """The pattern, a layout name resolved."""
        return LAYOUTS.get(self.pattern, self.pattern)

    @property
    def row_label(self) -> str:
        """How tables name its row: the label, marked external."""
        return f"{self.label or self.name} (external)"

    def check(self, eval_levels: Sequence[str], n_datasets: int = 1) -> None:
        """One line naming the key unless the pattern, the path and the levels make sense."""
        fields = _fields(self.template, f"{self.where}.pattern")
        bad = sorted(set(fields) - set(FIELDS))
        if bad:
            raise RefsrError(f"{self.where}.pattern", f"unknown field {{{bad[0]}}} in {self.template!r}; "
                                                     f"use {', '.join('{' + f + '}' for f in FIELDS)} or a "
                                                     f"layout name ({', '.join(LAYOUTS)})")
        if not {"group", "index"} & set(fields):
            raise RefsrError(f"{self.where}.pattern", f"{self.template!r} names no test image: use {{group}} "
                                                     "or {index}")
        path_fields = _fields(self.path, f"{self.where}.path")
        if set(path_fields) - {"dataset"}:
            raise RefsrError(f"{self.where}.path", f"{self.path!r}: only {{dataset}} can be filled in a path")
        if n_datasets > 1 and "dataset" not in path_fields:
            raise RefsrError(f"{self.where}.path", f"{n_datasets} datasets are evaluated: the path must "
                                                  "say where each one's images are ({dataset})")
        levels = self.levels_in(eval_levels)
        if "level" not in fields and len(levels) != 1:
            raise RefsrError(f"{self.where}.levels", f"{self.template!r} has no {{level}}, so its images "
                                                    f"stand for one level: set levels to one of "
                                                    f"{', '.join(eval_levels)}")
        unknown = sorted(set(self.level_names) - set(levels))
        if unknown:
            raise RefsrError(f"{self.where}.level_names", f"{unknown[0]} is not one of its levels "
                                                         f"({', '.join(levels)})")

    def levels_in(self, eval_levels: Sequence[str]) -> list[str]:
        """Its levels, in the order of ``evaluation.levels``; each must be evaluated."""
        if self.levels is None:
            return list(eval_levels)
        extra = [lv for lv in self.levels if lv not in eval_levels]
        if extra:
            raise RefsrError(f"{self.where}.levels", f"{extra[0]} is not in evaluation.levels "
                                                    f"({', '.join(eval_levels)})")
        return [lv for lv in eval_levels if lv in self.levels]

    def folder(self, dataset: str) -> Path:
        return Path(self.path.format(dataset=dataset))

    def file(self, dataset: str, group: str, index: int, level: str) -> Path:
        """Where the SR of ``group`` (the ``index``-th test image) at ``level`` is."""
        name = self.template.format(group=group, index=index, level=self.level_names.get(level, level))
        return self.folder(dataset) / name


def entries(config: Mapping) -> dict[str, ExternalOutputs]:
    """The config's external methods, by name."""
    return {name: ExternalOutputs.from_config(name, spec) for name, spec in (config.get("external") or {}).items()}


def check_config(config: Mapping, model_names: Iterable[str]) -> None:
    """Every ``external`` entry of a validated config: a name that is no registry model (nor a
    name a path could not hold), a valid pattern and path, levels that are evaluated."""
    models = set(model_names)
    levels = list(config["evaluation"]["levels"])
    for name, ext in entries(config).items():
        if name in models:
            raise RefsrError(f"config key external.{name}", f"{name} is a model of the registry; give the "
                                                           "external method another name")
        if not name.replace("_", "").replace("-", "").isalnum():
            raise RefsrError(f"config key external.{name}", "a name of letters, digits, _ and - only "
                                                           "(it names files and table rows)")
        ext.check(levels, len(config["eval_datasets"]))


def expected_cells(ds: Dataset, tiers: pd.DataFrame, levels: Sequence[str]) -> list[tuple[int, str, str]]:
    """``(index, group, level)`` of every cell the dataset has at ``levels``: all but the
    structurally absent ones (no reference at that level for that image)."""
    absent = set(absent_levels(tiers, [g.name for g in ds.groups], levels))
    return [(i, g.name, lv) for i, g in enumerate(ds.groups) for lv in levels if (g.name, lv) not in absent]


def _size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file's header; None when it is no image Pillow reads."""
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, UnidentifiedImageError):
        return None


def problems(ext: ExternalOutputs, ds: Dataset, tiers: pd.DataFrame, levels: Sequence[str],
             scale: int) -> list[str]:
    """Every missing, unreadable or mis-sized image of ``ext`` on ``ds`` (empty: all fine).
    An SR must have the size of the scale-cropped HR, as the pipeline's own outputs do."""
    folder = ext.folder(ds.name)
    if not folder.is_dir():
        return [f"folder {folder} not found"]
    out, hr_sizes = [], {}
    for index, group, level in expected_cells(ds, tiers, levels):
        path = ext.file(ds.name, group, index, level)
        rel = os.path.relpath(path, folder)
        if not path.is_file():
            out.append(f"{rel} missing")
            continue
        size = _size(path)
        if size is None:
            out.append(f"{rel} unreadable")
            continue
        if group not in hr_sizes:
            w, h = _size(ds.group(group).hr) or (0, 0)
            hr_sizes[group] = (w - w % scale, h - h % scale)
        if size != hr_sizes[group]:
            out.append(f"{rel} is {size[0]}x{size[1]}, the HR {hr_sizes[group][0]}x{hr_sizes[group][1]}")
    return out


def problem_line(ext: ExternalOutputs, dataset: str, found: Sequence[str]) -> str:
    """All of ``found`` in one line (the first cause first)."""
    return (f"external outputs {ext.name} on {dataset} ({ext.folder(dataset)}): {len(found)} problem(s): "
            + "; ".join(found))


def collect(ext: ExternalOutputs, ds: Dataset, tiers: pd.DataFrame, levels: Sequence[str], scale: int,
            out_dir: str | os.PathLike) -> int:
    """Check every image (all problems in one line), then write them into refsr's layout
    ``out_dir/{group}/{level}.png`` (atomically: all or nothing). Returns the images written."""
    found = problems(ext, ds, tiers, levels, scale)
    if found:
        raise RefsrError(f"{ext.where}.path", problem_line(ext, ds.name, found))
    cells = expected_cells(ds, tiers, levels)
    with atomic_dir(out_dir) as tmp:
        for index, group, level in progress(cells, f"external {ext.name} on {ds.name}"):
            write_image(Path(tmp) / group / f"{level}.png", read_image(ext.file(ds.name, group, index, level)))
    return len(cells)

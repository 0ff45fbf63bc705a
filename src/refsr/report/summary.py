"""Per-level means of the evaluation CSVs, and how a table cell shows them.

A cell is the mean over the test images that *have* its level: every image has LR and HR,
and L1..L5 where the tiers table gives it a reference there (an image without one is
*structurally absent* at that level: the evaluation CSV has no row for it). ``n_images`` is
the dataset's number of test images, ``n_level`` the number that have the level; when
``n_level`` < ``n_images`` the cell shows the count, e.g. ``28.10 / 0.810 / n/a (n = 2/3)``,
and a level no image has is ``—`` with ``(n = 0/3)``.

A *failure* is different: when an image that has the level has no SR output for that
(model, level) - or, for LPIPS, no value - the mean is **not reported**: the CSV holds NaN and
``n_missing`` > 0, Markdown shows ``—†`` and LaTeX ``---$^\\dagger$``, and a footnote says
"k of N images missing". LPIPS that could not be computed at all (weights unavailable, or
disabled) is ``n/a``, with the reason in the caption; so is ST-LPIPS when it is disabled in the
config (``evaluation.stlpips: false``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from refsr.data.layout import EVAL_LEVELS
from refsr.evaluation.results import METRICS, read_eval_csv, read_sidecar

LABEL = {"psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS", "stlpips": "ST-LPIPS"}
ARROW = {"psnr": "\u2191", "ssim": "\u2191", "lpips": "\u2193", "stlpips": "\u2193"}
DIGITS = {"psnr": 2, "ssim": 4, "lpips": 4, "stlpips": 4}  # main table
COMPACT_DIGITS = {"psnr": 2, "ssim": 3, "lpips": 3, "stlpips": 3}  # per-level cells

MISSING_MD = "\u2014\u2020"  # em dash + dagger
MISSING_TEX = r"---$^\dagger$"
NA = "n/a"
ABSENT_MD = "\u2014"  # em dash, no dagger: no image has a reference at this level
ABSENT_TEX = "---"
SUMMARY_COLUMNS = ("dataset", "model", "level", "n_images", "n_level", "n_missing", *METRICS)
NOT_GIVEN = "n/g"  # an external method's folder has no images at this level
NOT_GIVEN_NOTE = "n/g: not given (the external method's folder has no images at this level)."
COUNT_NOTE = ("n = k/N: mean over the k of the N test images that have a reference at this "
              "level (the others have none: structurally absent, see the tiers CSV).")


def load_evals(csv_paths: Iterable[str | os.PathLike]) -> tuple[dict, dict]:
    """``results/eval/{dataset}/{model}.csv`` (+ ``.json``) -> {(dataset, model): df / meta}."""
    evals, metas = {}, {}
    for p in csv_paths:
        p = Path(p)
        key = (p.parent.name, p.stem)
        evals[key] = read_eval_csv(p)
        metas[key] = read_sidecar(p.with_suffix(".json"))
    return evals, metas


def summarise(evals: Mapping[tuple[str, str], pd.DataFrame],
              levels: Sequence[str] = EVAL_LEVELS,
              metas: Mapping[tuple[str, str], Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """Tidy means: one row per (dataset, model, level).

    ``n_images`` is the number of test images of the dataset (union over its models);
    ``n_level`` the images that have the level (a row in the model's CSV); ``n_missing``
    those of them without an SR output for that (model, level). A metric's mean is NaN
    unless *every* image that has the level has a value; ``{metric}_n`` counts those that do.
    ``given`` is False at a level the model's evaluation did not cover (its sidecar's
    ``levels`` in ``metas``: an external method whose folder has only some levels); the
    tables show such a cell as ``n/g``, neither absent nor a failure.
    """
    images: dict[str, set[str]] = {}
    for (ds, _), df in evals.items():
        images.setdefault(ds, set()).update(df["image"].astype(str))
    rows = []
    for (ds, model), df in evals.items():
        n = len(images[ds])
        for level in levels:
            part = df[df["level"] == level].drop_duplicates("image")
            scored = part.dropna(subset=["psnr"])
            k = len(part)
            given = metas is None or level in (metas.get((ds, model)) or {}).get("levels", levels)
            row: dict[str, Any] = {"dataset": ds, "model": model, "level": level, "n_images": n,
                                   "n_level": k, "n_missing": k - len(scored), "given": given}
            for m in METRICS:
                vals = part[m].dropna()
                row[f"{m}_n"] = len(vals)
                row[m] = float(vals.mean()) if len(vals) == k and k > 0 else math.nan
            rows.append(row)
    cols = list(SUMMARY_COLUMNS) + [f"{m}_n" for m in METRICS] + ["given"]
    return pd.DataFrame(rows, columns=cols)


def cell_status(row: Mapping[str, Any], metric: str, lpips_available: bool) -> str:
    """``ok`` | ``not_given`` (the method's evaluation did not cover the level) | ``absent`` (no image has the level) | ``missing`` (some images that have it
    lack a value: a failure) | ``na`` (LPIPS not computed at all, or ST-LPIPS disabled in the
    config: no value for any image that has an SR output)."""
    if not row.get("given", True):
        return "not_given"
    k = row["n_level"]
    if k == 0:
        return "absent"
    if row[f"{metric}_n"] == k:
        return "ok"
    if metric == "lpips" and not lpips_available and row["n_missing"] < k:
        return "na"
    if metric == "stlpips" and row["stlpips_n"] == 0 and row["n_missing"] < k:
        return "na"
    return "missing"


def partial(row: Mapping[str, Any]) -> bool:
    """Some (or all) images are structurally absent at the row's level."""
    return bool(row.get("given", True)) and row["n_level"] < row["n_images"]


def count_suffix(row: Mapping[str, Any], tex: bool = False) -> str:
    """`` (n = k/N)`` when not every image has the row's level, else empty."""
    if not partial(row):
        return ""
    return f" ($n = {row['n_level']}/{row['n_images']}$)" if tex else \
        f" (n = {row['n_level']}/{row['n_images']})"


def count_notes(summary: pd.DataFrame) -> list[str]:
    """The footnotes explaining ``n = k/N`` and ``n/g`` when some cell of ``summary`` shows one."""
    rows = summary.to_dict("records")
    return ([COUNT_NOTE] if any(partial(r) for r in rows) else []) + (
        [NOT_GIVEN_NOTE] if any(not r.get("given", True) for r in rows) else [])


def _num(value: float, digits: int) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}f}"


def fmt_cell(row, metric, lpips_available, digits, tex=False) -> str:
    """One metric's value (no count suffix), ``n/a``, the absent dash or the failure mark."""
    status = cell_status(row, metric, lpips_available)
    if status == "ok":
        return _num(row[metric], digits[metric])
    if status == "na":
        return NA
    if status == "not_given":
        return NOT_GIVEN
    if status == "absent":
        return ABSENT_TEX if tex else ABSENT_MD
    return MISSING_TEX if tex else MISSING_MD


def missing_notes(summary: pd.DataFrame, lpips_available: bool,
                  metrics: Sequence[str] = METRICS) -> list[str]:
    """Footnotes for every missing-marked (failure) cell of ``metrics``; counts are out of
    the images that have the level."""
    notes = []
    for row in summary.to_dict("records"):
        if not row.get("given", True):
            continue
        where = f"{row['dataset']}, {row['model']}, {row['level']}"
        of = f"{row['n_level']} images" + (" with a reference at this level" if partial(row) else "")
        if row["n_missing"] > 0:
            notes.append(f"\u2020 {where}: {row['n_missing']} of {of} "
                         f"missing (no SR output); mean not reported.")
            continue
        for m in metrics:
            if cell_status(row, m, lpips_available) == "missing":
                k = row["n_level"] - row[f"{m}_n"]
                notes.append(f"\u2020 {where}: {LABEL[m]} missing for {k} of {of}; "
                             f"mean not reported.")
    return notes

"""The paper's figures, regenerated (matplotlib, PNG + PDF, written atomically).

* :func:`plot_metric_vs_level` — each metric against the reference level, one line per model.
* :func:`plot_comparison_grid` — crops of HR, bicubic, SISR, SRNTT at several levels, and
  the reference, for a few test images.
* :func:`plot_correspondence` — which part of the reference each output region borrows
  from (SRNTT's relu3_1 matching, and TTSR's hard attention below it when a TTSR model ran;
  colour-coded by reference position) and the best-match score map.
"""

from __future__ import annotations

import logging
import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import hsv_to_rgb  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from refsr.core.atomic import atomic_path  # noqa: E402
from refsr.core.imageio import read_image  # noqa: E402
from refsr.data.layout import EVAL_LEVELS, LEVELS, Dataset  # noqa: E402
from refsr.models import registry  # noqa: E402
from refsr.report.summary import LABEL, cell_status, partial  # noqa: E402

log = logging.getLogger(__name__)



def model_label(model: str) -> str:
    """A model's name in figures (the registry's label)."""
    return registry.get(model).label


def showcase(models: Sequence[str]) -> tuple[str | None, str | None]:
    """``(single-image, reference-based)`` models the comparison grid shows: the first
    reference-based model (registry order) that no listed model is trained from, and the
    single-image model it starts from (else the first single-image model listed)."""
    ref = next(iter(registry.leaves(models, registry.REFERENCE_BASED)), None)
    chain = registry.ancestors(ref) if ref else []
    sisr = next((m for m in reversed(chain) if m in models
                 and registry.get(m).kind == registry.SINGLE_IMAGE), None)
    if sisr is None:
        sisr = next((m for m in registry.names(registry.SINGLE_IMAGE) if m in models), None)
    return sisr, ref


def _save(fig, out_png, out_pdf=None, dpi: int = 130) -> None:
    for out in [out_png] + ([out_pdf] if out_pdf else []):
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=dpi)
    plt.close(fig)


# --------------------------------------------------------------------------------------
# metric vs level
# --------------------------------------------------------------------------------------


def level_positions(levels: Sequence[str] = EVAL_LEVELS) -> dict[str, float]:
    """x positions: L1..L5 at 1..5, then the other levels (ALL, ALL_STITCHED, LR, HR) after a gap."""
    pos, x, gap = {}, 1.0, False
    for lv in levels:
        if lv not in LEVELS and not gap:
            x, gap = x + 0.6, True
        pos[lv] = x
        x += 1.0
    return pos


def plot_metric_vs_level(summary: pd.DataFrame, models: Sequence[str], metrics: Sequence[str],
                         title: str, out_png, out_pdf=None, lpips_available: bool = True,
                         lpips_reason: str | None = None,
                         levels: Sequence[str] = EVAL_LEVELS) -> None:
    """One panel per metric; per model the mean at each level over the images that have it.

    ``summary`` is :func:`refsr.report.summary.summarise` for one dataset. A level that only
    some images have (the others have no reference there: structurally absent) is labelled
    with its count ``n=k``; a level no image has gets no point. Cells whose mean is not
    reported (a failure: SR outputs missing) are left out and drawn as a grey cross at the
    axis. L1..L5 are joined by lines; ALL, ALL_STITCHED, LR (SISR mode) and HR (oracle) are
    separate points after the dashed line.
    """
    pos = level_positions(levels)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.3 * len(metrics), 3.5),
                             constrained_layout=True, squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    any_missing = any_partial = False
    for ax, metric in zip(axes[0], metrics, strict=True):
        if metric == "lpips" and not lpips_available:
            reason = textwrap.fill(lpips_reason or "LPIPS not computed", 40)
            ax.text(0.5, 0.5, reason, ha="center", va="center", fontsize=7, wrap=True,
                    transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(LABEL[metric])
            continue
        for i, model in enumerate(models):
            rows = summary[summary["model"] == model].set_index("level")
            c = colours[i % len(colours)]
            vals, miss, counts = {}, [], {}
            for lv in pos:
                if lv not in rows.index:
                    continue
                row = rows.loc[lv]
                status = cell_status(row, metric, lpips_available)
                if status == "absent":
                    continue  # no image has a reference at this level: nothing to plot
                if status == "ok" and math.isfinite(row[metric]):
                    vals[lv] = row[metric]
                    if partial(row):
                        counts[lv] = int(row["n_level"])
                else:
                    miss.append(pos[lv])
            # L1..L5 joined (a missing level breaks the line); LR and HR as separate points
            main = [(pos[lv], vals.get(lv, math.nan)) for lv in pos if lv in LEVELS]
            extra = [(pos[lv], vals[lv]) for lv in pos if lv not in LEVELS and lv in vals]
            label = model_label(model)
            if any(math.isfinite(y) for _, y in main):
                ax.plot(*zip(*main, strict=True), "-o", color=c, ms=4, label=label)
                label = None
            if extra:
                ax.plot(*zip(*extra, strict=True), "s", color=c, ms=5, label=label)
            for lv, k in counts.items():
                any_partial = True
                ax.annotate(f"n={k}", (pos[lv], vals[lv]), textcoords="offset points",
                            xytext=(4, 4), fontsize=6, color=c)
            if miss:
                any_missing = True
                ax.plot(miss, [0.02] * len(miss), "x", color="0.5", ms=6,
                        transform=ax.get_xaxis_transform())
        others = [x for lv, x in pos.items() if lv not in LEVELS]
        if others and len(others) < len(pos):
            ax.axvline(min(others) - 0.8, color="0.7", lw=0.8, ls="--")  # L1..L5 | the others
        ax.set_xticks(list(pos.values()), list(pos))
        ax.set_xlabel("reference level (L1 = most similar)")
        arrow = "\u2193 better" if metric in ("lpips", "stlpips") else "\u2191 better"
        ax.set_title(f"{LABEL[metric]}{' (dB)' if metric == 'psnr' else ''}, {arrow}", fontsize=10)
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right center", fontsize=8)
    suffix = "  (x: mean not reported, images missing)" if any_missing else ""
    if any_partial:
        n = int(summary["n_images"].max())
        suffix += f"  (n=k: mean over the k of {n} images with a reference at that level)"
    fig.suptitle(title + suffix, fontsize=10)
    _save(fig, out_png, out_pdf)


# --------------------------------------------------------------------------------------
# visual comparison grid
# --------------------------------------------------------------------------------------


def textured_window(img: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left ``(y, x)`` of the ``size`` x ``size`` window with the most gradient energy."""
    h, w = img.shape[:2]
    size = min(size, h, w)
    g = img.astype(np.float64).mean(axis=2)
    energy = np.zeros_like(g)
    energy[:, 1:] += np.abs(np.diff(g, axis=1))
    energy[1:, :] += np.abs(np.diff(g, axis=0))
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(1, size // 4)
    best, where = -1.0, (0, 0)
    for y in range(0, h - size + 1, step):
        for x in range(0, w - size + 1, step):
            e = (integral[y + size, x + size] - integral[y, x + size] - integral[y + size, x]
                 + integral[y, x])
            if e > best:
                best, where = e, (y, x)
    return where


def references_at(tiers: pd.DataFrame, ds: Dataset, group: str, level: str) -> list[Path]:
    """The reference ``group`` uses at ``level`` (the tiers CSV's ``used`` one; empty: none)."""
    g = ds.group(group)
    sel = tiers[(tiers["group"].astype(str) == group) & (tiers["tier"].astype(str) == level)
                & tiers["used"]]
    return [g.refs[str(r)] for r in sel["ref"] if str(r) in g.refs]


def comparison_columns(models: Sequence[str], levels: Sequence[str]) -> list[tuple[str, str | None, str]]:
    """``(label, model, level)`` per column of the grid (model None = HR / reference).

    Bicubic and the SISR model ignore the reference: their column shows the LR level (the
    same output as at every level, and one every image has)."""
    cols: list[tuple[str, str | None, str]] = [("HR", None, "HR")]
    if "bicubic" in models:
        cols.append(("Bicubic", "bicubic", "LR"))
    sisr, refsr = showcase(models)
    if sisr:
        cols.append((model_label(sisr), sisr, "LR"))
    if refsr:
        cols += [(f"{model_label(refsr)} {lv}", refsr, lv) for lv in levels]
    return cols


def plot_comparison_grid(ds: Dataset, sr_dirs: Mapping[str, str | os.PathLike], models: Sequence[str],
                         tiers: pd.DataFrame, evals: Mapping[str, pd.DataFrame],
                         out_png, out_pdf=None, images: Sequence[str] | None = None,
                         levels: Sequence[str] = ("L1", "L3", "L5"), crop: int = 64,
                         n_images: int = 3, ref_level: str = "L1") -> list[str]:
    """Crops of HR and SR outputs (+ the full reference), one row per test image.

    Each SR panel is labelled with that image's full-image PSNR from the evaluation CSV.
    A level the image has no reference at leaves its panel empty with "no {level} ref"
    (structurally absent); a missing SR output (a failure) with "missing". Returns the images.
    """
    names = list(images) if images else [g.name for g in ds.groups][:n_images]
    for n in names:
        ds.group(n)  # clear error for an unknown image name
    cols = comparison_columns(models, levels)
    ncols = len(cols) + 2  # + full HR with the crop box, + reference
    fig, axes = plt.subplots(len(names), ncols, figsize=(1.75 * ncols, 1.95 * len(names)),
                             constrained_layout=True, squeeze=False)
    for r, name in enumerate(names):
        g = ds.group(name)
        hr = read_image(g.hr)
        y, x = textured_window(hr, crop)
        c = min(crop, *hr.shape[:2])
        ax = axes[r][0]
        ax.imshow(hr)
        ax.add_patch(Rectangle((x, y), c, c, fill=False, ec="yellow", lw=1.2))
        ax.set_ylabel(name, fontsize=8)
        if r == 0:
            ax.set_title("HR (full)", fontsize=8)
        for j, (label, model, level) in enumerate(cols, start=1):
            ax = axes[r][j]
            if r == 0:
                ax.set_title(label, fontsize=8)
            if model is None:
                ax.imshow(hr[y:y + c, x:x + c], interpolation="nearest")
                ax.set_xlabel("ground truth", fontsize=7)
                continue
            path = Path(sr_dirs[model]) / name / f"{level}.png"
            if level in LEVELS and not references_at(tiers, ds, name, level):
                ax.text(0.5, 0.5, f"no {level} ref", ha="center", va="center", fontsize=7,
                        transform=ax.transAxes)
                continue
            if not path.is_file():
                ax.text(0.5, 0.5, "missing", ha="center", va="center", transform=ax.transAxes)
                continue
            sr = read_image(path)
            ax.imshow(sr[y:y + c, x:x + c], interpolation="nearest")
            df = evals.get(model)
            if df is not None:
                hit = df[(df["image"].astype(str) == name) & (df["level"] == level)]
                if len(hit) and np.isfinite(hit["psnr"].iloc[0]):
                    ax.set_xlabel(f"{hit['psnr'].iloc[0]:.2f} dB", fontsize=7)
        ax = axes[r][-1]
        refs = references_at(tiers, ds, name, ref_level)
        if r == 0:
            ax.set_title(f"Ref {ref_level} (full)", fontsize=8)
        if refs:
            ax.imshow(read_image(refs[0]))
        else:
            ax.text(0.5, 0.5, f"no {ref_level} ref", ha="center", va="center", transform=ax.transAxes)
        for a in axes[r]:
            a.set_xticks([])
            a.set_yticks([])
    fig.suptitle(f"{ds.name}: {crop}x{crop} HR-pixel crops (most textured window); "
                 "PSNR of the full image (Y, protocol of the tables)", fontsize=9)
    _save(fig, out_png, out_pdf, dpi=150)
    return names


# --------------------------------------------------------------------------------------
# correspondence
# --------------------------------------------------------------------------------------


def position_colours(h: int, w: int) -> np.ndarray:
    """``h x w x 3`` colour code of grid positions: hue = angle around the centre,
    saturation = distance from it (the optical-flow colour wheel), value 1."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dy = (yy - (h - 1) / 2) / max(1.0, (h - 1) / 2)
    dx = (xx - (w - 1) / 2) / max(1.0, (w - 1) / 2)
    hue = (np.arctan2(dy, dx) / (2 * np.pi)) % 1.0
    sat = np.clip(np.hypot(dx, dy) / math.sqrt(2), 0, 1) * 0.85 + 0.15
    return hsv_to_rgb(np.stack([hue, sat, np.ones_like(hue)], axis=-1))


def borrowed_mosaic(ref: np.ndarray, py: np.ndarray, px: np.ndarray, stride: int = 4) -> np.ndarray:
    """For every content position, the ``stride`` x ``stride`` block of ``ref`` around its
    matched position: the reference rearranged as the output would borrow it."""
    h, w = py.shape
    d = np.arange(stride)
    rows = np.clip(py[:, :, None] * stride + d, 0, ref.shape[0] - 1)  # h x w x s
    cols = np.clip(px[:, :, None] * stride + d, 0, ref.shape[1] - 1)
    blocks = ref[rows[:, :, :, None], cols[:, :, None, :]]  # h x w x s x s x 3
    return blocks.transpose(0, 2, 1, 3, 4).reshape(h * stride, w * stride, -1)


@dataclass(frozen=True)
class MatchView:
    """What the correspondence figure shows of one matching (plain arrays, no model).

    ``py``/``px``: ``H x W`` matched patch centre in the reference's relu3_1 grid;
    ``score``: S*; ``ref_grid``: the reference's relu3_1 map size; ``stride``: image pixels
    per relu3_1 position; ``mean_cosine``: the tier score of the pair.
    """

    py: np.ndarray
    px: np.ndarray
    score: np.ndarray
    ref_grid: tuple[int, int]
    stride: int
    mean_cosine: float


def plot_correspondence(rows: Sequence[tuple[np.ndarray, str, MatchView, str]], ref: np.ndarray,
                        level: str, title: str, out_png, out_pdf=None) -> None:
    """One row per matching of one test image against its ``level`` reference: SRNTT's relu3_1
    matching, and TTSR's hard attention when a TTSR model ran.

    ``rows``: ``(shown, shown_label, view, name)``. Panels per row: ``shown`` (the LR input
    upsampled, or the model's output), the reference with its position colour code, the colour
    of the matched reference position for every output region, the reference blocks rearranged
    as matched, and the best-match score map.
    """
    fig, axes = plt.subplots(len(rows), 5, figsize=(17, 3.9 * len(rows)), constrained_layout=True,
                             squeeze=False)
    for ax, (shown, shown_label, view, name) in zip(axes, rows, strict=True):
        _correspondence_row(ax, shown, shown_label, ref, view, level, name)
    fig.suptitle(title, fontsize=10)
    _save(fig, out_png, out_pdf)


def _correspondence_row(axes, shown, shown_label: str, ref, view: MatchView, level: str, name: str) -> None:
    py, px, score, mean_cos = view.py, view.px, view.score, view.mean_cosine
    rh, rw = view.ref_grid
    code = position_colours(rh, rw)
    borrowed = code[py, px]
    s = view.stride
    H, W = py.shape
    axes[0].imshow(shown)
    axes[0].set_title(shown_label, fontsize=9)
    axes[1].imshow(ref)
    axes[1].imshow(code, extent=(0, rw * s, rh * s, 0), alpha=0.55, interpolation="nearest")
    axes[1].set_xlim(0, ref.shape[1])
    axes[1].set_ylim(ref.shape[0], 0)
    axes[1].set_title(f"Reference {level} + position colour code", fontsize=9)
    axes[2].imshow(borrowed, extent=(0, W * s, H * s, 0), interpolation="nearest")
    axes[2].set_title(f"{name}: borrowed from (colour of the\nmatched reference position)", fontsize=9)
    axes[3].imshow(borrowed_mosaic(ref, py, px, s))
    axes[3].set_title("Reference blocks rearranged as matched", fontsize=9)
    im = axes[4].imshow(score, extent=(0, W * s, H * s, 0), cmap="viridis", interpolation="nearest")
    axes[4].set_title(f"{name}: best-match score\nmean best cosine {mean_cos:.3f}", fontsize=9)
    plt.colorbar(im, ax=axes[4], fraction=0.046, pad=0.02)
    for a in axes:
        a.set_xticks([])
        a.set_yticks([])

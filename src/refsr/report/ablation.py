"""The ablation tables and figure: variants against their model's main run, per level.

Arrays in, :class:`~refsr.report.render.Table` and a matplotlib figure out. A variant is one
model re-run with some settings changed (``variant.change``, :mod:`refsr.evaluation.variants`);
its baseline is that model's main run on the same dataset, or the variant named by
``variant.baseline``. Per (dataset, variant, level): the variant's mean, the delta to the baseline and
the paired per-image sign count (``+k/-m``: images where the variant is better / worse; for
ST-LPIPS lower is better, so its delta's sign is flipped in the count).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from refsr.report.render import Table, md_doc, md_table, tex_table, tidy_csv

METRICS = ("psnr", "ssim", "stlpips")
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "stlpips": False}
FORMAT = {"psnr": "{:.2f}", "ssim": "{:.4f}", "stlpips": "{:.4f}"}


@dataclass(frozen=True)
class Variant:
    name: str
    model: str
    change: str  # what the variant changes, for the caption (e.g. "reference.align: none → homography")
    baseline: str | None = None  # another variant to compare with; None = the model's main run


def ablation_frame(base: Mapping[tuple[str, str], pd.DataFrame], runs: Mapping[tuple[str, str], pd.DataFrame],
                   variants: Sequence[Variant], levels: Sequence[str],
                   align_counts: Mapping[tuple[str, str], dict] | None = None) -> pd.DataFrame:
    """One row per (dataset, variant, level): n images, each metric's mean, delta and sign count.

    ``base``: (dataset, model) -> eval CSV of the main run; ``runs``: (dataset, variant) -> the
    variant's eval CSV (a variant with a baseline is compared with that variant's).
    """
    rows = []
    for (dataset, vname), df in runs.items():
        v = next(x for x in variants if x.name == vname)
        ref = runs[(dataset, v.baseline)] if v.baseline else base[(dataset, v.model)]
        counts = (align_counts or {}).get((dataset, vname), {})
        for level in levels:
            a = df[df["level"] == level].set_index("image")
            b = ref[ref["level"] == level].set_index("image")
            common = a.index.intersection(b.index)
            if not len(common):
                continue
            row = {"dataset": dataset, "variant": vname, "model": v.model, "change": v.change,
                   "baseline": v.baseline or "main run",
                   "level": level, "n": len(common),
                   "aligned": counts.get("aligned", 0), "fallback": counts.get("fallback", 0)}
            for m in METRICS:
                x, y = a.loc[common, m].astype(float), b.loc[common, m].astype(float)
                d = x - y
                better = d if HIGHER_IS_BETTER[m] else -d
                row[m] = float(x.mean())
                row[f"{m}_base"] = float(y.mean())
                row[f"d_{m}"] = float(d.mean())
                row[f"{m}_better"] = int((better > 0).sum())
                row[f"{m}_worse"] = int((better < 0).sum())
            rows.append(row)
    return pd.DataFrame(rows)


def _cell(row, m: str) -> str:
    if not np.isfinite(row[m]):
        return "n/a"
    return (f"{FORMAT[m].format(row[m])} ({row[f'd_{m}']:+.{4 if m != 'psnr' else 2}f}; "
            f"+{row[f'{m}_better']}/-{row[f'{m}_worse']})")


def ablation_table(frame: pd.DataFrame, variants: Sequence[Variant], protocol_text: str) -> Table:
    caption = ("Ablations: each variant is one model re-run with some settings changed, against its "
               "baseline (that model's main run, or the variant named) on the same images. Cells: the "
               "variant's mean (delta to the baseline; paired "
               "per-image sign count +better/-worse, ST-LPIPS lower is better). "
               + " ".join(f"{v.name} = {v.model} with {v.change}." for v in variants)
               + " aligned/fallback: references warped by a homography (homography_then_flow: then refined "
               "by optical flow) / kept unwarped (poor fit). "
               + protocol_text)
    header = ["dataset", "variant", "baseline", "level", "n", "PSNR", "SSIM", "ST-LPIPS", "aligned/fallback"]
    rows = [[r.dataset, r.variant, r.baseline, r.level, str(r.n), *(_cell(r._asdict(), m) for m in METRICS),
             f"{r.aligned}/{r.fallback}"] for r in frame.itertuples(index=False)]
    md = md_doc("Table: ablations", caption, md_table(header, rows), [])
    head = [" & ".join(header) + r" \\"]
    tex = tex_table(caption, "tab:ablation", "llllrllll", head,
                    [[c.replace("%", r"\%").replace("_", r"\_") for c in r] for r in rows])
    return Table("ablation", tidy_csv(frame), md, tex)


def match_accuracy_table(df: pd.DataFrame, sisr_model: str) -> Table:
    """Mean accuracy per (level, angle) x (align, degrade) over photos."""
    g = df.groupby(["level", "angle", "align", "degrade"])["accuracy"].mean().unstack(["align", "degrade"])
    g = g.sort_index()
    cols = list(g.columns)
    caption = ("Matching accuracy on known correspondence: fraction of relu3_1 content positions whose "
               "SRNTT match lies within one cell of the truth, mean over the test photos; views of each "
               "photo made like the embedded levels L1..L4 and rotated by the given angle. align: "
               "reference as is (none) or warped by the estimated homography; degrade: φ(LR↑) against "
               f"φ(Ref↓↑) (bicubic) or φ(SISR(LR)) against φ(SISR(Ref↓)) with {sisr_model} (sr_model).")
    header = ["level", "angle", *(f"{a}/{d}" for a, d in cols)]
    rows = [[lv, f"{ang:g}", *(f"{g.loc[(lv, ang), c]:.3f}" for c in cols)] for lv, ang in g.index]
    md = md_doc("Table: matching accuracy", caption, md_table(header, rows), [])
    tex = tex_table(caption, "tab:match_accuracy", "ll" + "r" * len(cols),
                    [" & ".join(h.replace("_", r"\_") for h in header) + r" \\"], rows)
    return Table("match_accuracy", tidy_csv(df), md, tex)


def delta_figure(frame: pd.DataFrame, levels: Sequence[str]):
    """One panel per metric: each (dataset, variant)'s delta to its baseline per level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.6), squeeze=False)
    for ax, m in zip(axes[0], METRICS, strict=True):
        for (ds, vname), part in frame.groupby(["dataset", "variant"], sort=False):
            against = part["baseline"].iloc[0] if "baseline" in part else "main run"
            part = part.set_index("level").reindex([lv for lv in levels if lv in set(part["level"])])
            vs = "" if against == "main run" else f" vs {against}"
            ax.plot(range(len(part)), part[f"d_{m}"], marker="o", label=f"{vname}{vs} ({ds})")
            ax.set_xticks(range(len(part)), list(part.index), rotation=45, ha="right", fontsize=8)
        ax.axhline(0, color="0.5", lw=0.8)
        better = "higher" if HIGHER_IS_BETTER[m] else "lower"
        ax.set_title(f"Δ {m.upper() if m == 'psnr' else m} ({better} is better)")
        ax.set_xlabel("reference level")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig

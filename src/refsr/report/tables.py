"""The paper's tables, regenerated from the evaluation CSVs: CSV + Markdown + LaTeX (booktabs).

* **main** — models x datasets, PSNR / SSIM / LPIPS, every model at one reference level
  (``evaluation.main_level``, default L1 = the most similar reference; SISR models and
  bicubic ignore the reference, so their value is the same at every level).
* **per_level** — models x levels (L1..L5, LR, HR) for each dataset: the paper's
  reference-similarity study, extended with LPIPS.
* **paper_vs_reproduced** — on a CUFED5 dataset only: every published number with its source,
  protocol and level (:mod:`refsr.report.paper`), ours at that level, and ours - published
  only where protocol and level match (otherwise the row says why not).

Every caption names the protocol (:meth:`refsr.evaluation.protocol.Protocol.describe`), the dataset(s),
the VGG19 and LPIPS weight provenance, the git commit and a config hash.

Structurally absent levels (``n = k/N``: the mean over the images that have a reference
at that level), failures (``—†``: an SR output that should exist does not) and ``n/a``: see
:mod:`refsr.report.summary`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from refsr.data.layout import EVAL_LEVELS
from refsr.evaluation.protocol import Protocol
from refsr.evaluation.results import METRICS
from refsr.models import registry
from refsr.report import paper
from refsr.report.provenance import Provenance
from refsr.report.render import Table, latex_escape, md_doc, md_table, tex_table, tidy_csv
from refsr.report.summary import (
    ABSENT_MD,
    ABSENT_TEX,
    ARROW,
    COMPACT_DIGITS,
    DIGITS,
    LABEL,
    MISSING_MD,
    MISSING_TEX,
    NOT_GIVEN,
    SUMMARY_COLUMNS,
    cell_status,
    count_notes,
    count_suffix,
    fmt_cell,
    missing_notes,
)


def with_recipe(df: pd.DataFrame, prov: Provenance) -> pd.DataFrame:
    """``df`` with a ``recipe`` column after ``model`` (empty for models without recipes)."""
    df = df.copy()
    df.insert(df.columns.get_loc("model") + 1, "recipe", [prov.recipes.get(m, "") for m in df["model"]])
    return df


def _models_note(models: Sequence[str], level: str) -> str:
    known = [m for m in models if m in registry.MODELS]  # the others: external methods
    ref = [m for m in known if registry.get(m).uses_reference]
    other = [m for m in known if not registry.get(m).uses_reference]
    parts = []
    if len(known) < len(models):
        parts.append(f"external methods ({', '.join(m for m in models if m not in known)}) at the "
                     f"{level} reference as their folders give it")
    if ref:
        parts.append(f"Reference-based models ({', '.join(ref)}) use the {level} reference "
                     f"({'the most similar' if level == 'L1' else 'level ' + level}), the "
                     "convention of the published CUFED5 comparisons")
    if other:
        parts.append(f"{', '.join(other)} ignore the reference (same output at every level)")
    return "; ".join(parts) + "."


def main_table(summary: pd.DataFrame, models: Sequence[str], datasets: Sequence[str],
               prov: Provenance, level: str, lpips_available: bool) -> Table:
    """Models x datasets at ``level``: PSNR / SSIM / LPIPS / ST-LPIPS."""
    sel = summary[summary["level"] == level]
    caption = (f"Mean PSNR (dB), SSIM, LPIPS and ST-LPIPS over each dataset's test images, x4. "
               f"{_models_note(models, level)} " + prov.external_sentence(models) + prov.sentence(datasets))
    notes = missing_notes(sel, lpips_available) + count_notes(sel)
    by = {(r["dataset"], r["model"]): r for r in sel.to_dict("records")}
    header = ["Model"] + [f"{ds} {LABEL[m]}{ARROW[m]}" for ds in datasets for m in METRICS]
    md_rows, tex_rows = [], []
    for model in models:
        cells_md, cells_tex = [prov.row(model)], [latex_escape(prov.row(model))]
        for ds in datasets:
            row = by.get((ds, model))
            for m in METRICS:
                if row is None:
                    cells_md.append(MISSING_MD)
                    cells_tex.append(MISSING_TEX)
                else:
                    cells_md.append(_metric_cell(row, m, lpips_available))
                    cells_tex.append(_metric_cell(row, m, lpips_available, tex=True))
        md_rows.append(cells_md)
        tex_rows.append(cells_tex)
    k = len(METRICS)
    head = [" & " + " & ".join(rf"\multicolumn{{{k}}}{{c}}{{{latex_escape(ds)}}}" for ds in datasets)
            + r" \\",
            " ".join(rf"\cmidrule(lr){{{2 + i * k}-{1 + (i + 1) * k}}}" for i in range(len(datasets))),
            "Model & " + " & ".join(latex_escape(LABEL[m] + ARROW[m]) for _ in datasets
                                    for m in METRICS) + r" \\"]
    colspec = "l" + " ".join("c" * k for _ in datasets)
    title = f"Main results (reference level {level})"
    tidy = with_recipe(sel[list(SUMMARY_COLUMNS)], prov)
    return Table("main", tidy_csv(tidy),
                 md_doc(title, caption, md_table(header, md_rows), notes),
                 tex_table(f"{title}. {caption}", "tab:main", colspec, head, tex_rows, notes))


def _metric_cell(row, metric, lpips_available, tex=False) -> str:
    """A main-table cell: the value (or mark) and, at a partly absent level, ``(n = k/N)``."""
    text = fmt_cell(row, metric, lpips_available, DIGITS, tex)
    if cell_status(row, metric, lpips_available) == "missing":
        return text
    return text + count_suffix(row, tex)


def _level_cell(row, lpips_available, tex=False) -> str:
    """A per-level cell: PSNR / SSIM / LPIPS and, at a partly absent level, ``(n = k/N)``;
    one mark when every metric has the same one (failure ``—†``, absent ``—``). A cell with a
    failure shows no count: its mean is not reported."""
    parts = [fmt_cell(row, m, lpips_available, COMPACT_DIGITS, tex) for m in METRICS]
    missing = MISSING_TEX if tex else MISSING_MD
    if set(parts) == {NOT_GIVEN}:
        return NOT_GIVEN
    if missing in parts:
        return missing if len(set(parts)) == 1 else ("/" if tex else " / ").join(parts)
    absent = ABSENT_TEX if tex else ABSENT_MD
    text = absent if set(parts) == {absent} else ("/" if tex else " / ").join(parts)
    return text + count_suffix(row, tex)


def per_level_table(summary: pd.DataFrame, models: Sequence[str], datasets: Sequence[str],
                    prov: Provenance, lpips_available: bool,
                    levels: Sequence[str] = EVAL_LEVELS) -> Table:
    """For each dataset: models x levels, cells PSNR / SSIM / LPIPS / ST-LPIPS."""
    caption = ("PSNR (dB) / SSIM / LPIPS / ST-LPIPS per reference level, x4: L1..L5 from the most "
               "to the least similar reference, ALL = every reference of the image in one "
               "matching, ALL_STITCHED = every reference padded to 500x500 and stacked in one "
               "image (TTSR's and SRNTT's CUFED5 test input), LR = the LR input as its own "
               "reference (SISR mode), HR = the ground truth as reference (oracle upper bound). "
               "bicubic and SISR models ignore the reference. A mean is over the test images that "
               "have a reference at the level, with (n = k/N) where that is not all of them; "
               "\u2014\u2020 marks a failure (an SR output that should exist does not). "
               + prov.external_sentence(models) + prov.sentence(datasets))
    md_parts, tex_parts, notes_all = [], [], []
    for ds in datasets:
        sel = summary[summary["dataset"] == ds]
        notes = missing_notes(sel, lpips_available) + count_notes(sel)
        notes_all += [n for n in notes if n not in notes_all]
        by = {(r["model"], r["level"]): r for r in sel.to_dict("records")}
        md_rows, tex_rows = [], []
        for model in models:
            md_row, tex_row = [prov.row(model)], [latex_escape(prov.row(model))]
            for lv in levels:
                row = by.get((model, lv))
                md_row.append(MISSING_MD if row is None else _level_cell(row, lpips_available))
                tex_row.append(MISSING_TEX if row is None else _level_cell(row, lpips_available, True))
            md_rows.append(md_row)
            tex_rows.append(tex_row)
        md_parts.append(f"*{ds}* ({prov.datasets.get(ds, '?')} test images)\n\n"
                        + md_table(["Model", *levels], md_rows))
        head = ["Model & " + " & ".join(levels) + r" \\"]
        tex_parts.append(tex_table(f"Per-level results on {ds}. {caption}", f"tab:per_level_{ds}",
                                   "l" + "c" * len(levels), head, tex_rows, notes))
    title = "Results per reference level"
    tidy = with_recipe(summary[summary["dataset"].isin(datasets)][list(SUMMARY_COLUMNS)], prov)
    return Table("per_level", tidy_csv(tidy),
                 md_doc(title, caption, "\n".join(md_parts), notes_all), "\n".join(tex_parts))


def _opt_num(v: float, digits: int, signed: bool = False) -> str | None:
    if isinstance(v, float) and math.isnan(v):
        return None
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def paper_table(summary: pd.DataFrame, models: Sequence[str], dataset: str, prov: Provenance,
                levels: Sequence[str], protocol: Protocol) -> Table:
    """Every published CUFED5 number (:data:`refsr.report.paper.PUBLISHED`) beside ours at the
    same level under this run's protocol; the difference only where protocol, LR resize (where the
    source's is known) and level match."""
    sel = summary[summary["dataset"] == dataset]
    by = {(r["model"], r["level"]): r for r in sel.to_dict("records")}
    run_protocol = protocol.preset if not protocol.overrides else (
        f"{protocol.preset} with {', '.join(protocol.overrides)} overridden")
    rows, md_rows, tex_rows = [], [], []
    for pub in paper.PUBLISHED:
        why = paper.comparable(pub, run_protocol, levels, models, resize=protocol.resize)
        row = by.get((pub.model, pub.level)) if why is None else None
        if why is None and (row is None or row["n_missing"] > 0):
            why = f"our {pub.model} at {pub.level} is incomplete (see the per-level table)"
            row = None
        ours = {m: (row[m] if row is not None and cell_status(row, m, True) == "ok" else math.nan)
                for m in ("psnr", "ssim")}
        rec = {"method": pub.method, "model": pub.model or "", "level": pub.level or "",
               "protocol": pub.protocol or "", "resize": pub.resize or "", "weights": pub.weights,
               "paper_psnr": pub.psnr, "paper_ssim": pub.ssim,
               "psnr": ours["psnr"], "ssim": ours["ssim"],
               "delta_psnr": ours["psnr"] - pub.psnr, "delta_ssim": ours["ssim"] - pub.ssim,
               "comparable": why is None, "why_not": why or "", "source": pub.source, "url": pub.url}
        rows.append(rec)
        f = _opt_num
        vals = [f(pub.psnr, 2), f(pub.ssim, 4), f(rec["psnr"], 2), f(rec["ssim"], 4),
                f(rec["delta_psnr"], 2, True), f(rec["delta_ssim"], 4, True)]
        cells = [v if v is not None else "\u2014" for v in vals]
        ours_label = prov.row(pub.model) if why is None else "\u2014"
        note = why or "same protocol and level"
        md_rows.append([pub.method, pub.level or "not stated", pub.protocol or "not stated",
                        *cells[:2], ours_label, *cells[2:], note, f"[{pub.source}]({pub.url})"])
        tex_rows.append([latex_escape(x) for x in (pub.method, pub.level or "not stated",
                                                   pub.protocol or "not stated")]
                        + [c if c != "\u2014" else "---" for c in cells[:2]]
                        + [latex_escape(ours_label) if ours_label != "\u2014" else "---"]
                        + [c if c != "\u2014" else "---" for c in cells[2:]]
                        + [latex_escape(note), latex_escape(f"{pub.source} ({pub.url})")])
    n = prov.datasets.get(dataset)
    subset = (f" NOTE: only {n} of the {paper.CUFED5_GROUPS} CUFED5 test groups were evaluated, "
              "so no difference is a reproduction claim." if n != paper.CUFED5_GROUPS else "")
    caption = (f"Published CUFED5 (x4) numbers vs ours on {dataset} (this run's protocol: "
               f"{run_protocol}).{subset} {paper.provenance_note()} " + prov.sentence([dataset]))
    header = ["Published", "Level", "Protocol", "Pub. PSNR", "Pub. SSIM", "Ours", "Ours PSNR",
              "Ours SSIM", "\u0394PSNR", "\u0394SSIM", "Comparison", "Source"]
    head = [" & ".join(latex_escape(h) for h in header) + r" \\"]
    title = "Published vs ours (CUFED5)"
    csv = pd.DataFrame(rows).to_csv(index=False, float_format="%.6f", na_rep="nan")
    return Table("paper_vs_reproduced", csv, md_doc(title, caption, md_table(header, md_rows), []),
                 tex_table(f"{title}. {caption}", "tab:paper_vs_reproduced", "lllcclcccc ll", head,
                           tex_rows, []))

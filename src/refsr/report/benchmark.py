"""The RefSR benchmark table: every method under one protocol, per level; the protocol's own
effect; the published numbers where they can be compared.

Made by the tables rule when a run evaluates a method whose weights or images come from
elsewhere (imported released weights, an external method). For each evaluated dataset:

1. **Every method x every level** under this run's protocol (PSNR / SSIM; LPIPS and ST-LPIPS are
   in the per-level table), with where each method's SR images come from (trained here, imported
   released weights and their importer, external images and their source).
2. **The same SR images under the four protocol presets** at L1 and ALL_STITCHED
   (:mod:`refsr.evaluation.presets`): how much the protocol alone moves a number.
3. On the CUFED5 dataset (the published numbers are CUFED5's): **every published number**
   (:data:`refsr.report.paper.PUBLISHED`) beside ours under *its* preset at *its* level (from
   part 2, or from part 1 when its preset is this run's), the difference only where preset,
   level, LR resize (where the source states it) and model match; otherwise the row says why
   not. A subset of CUFED5 is never a reproduction claim (the caption says so).

CSV: one tidy row per number, column ``part`` = ``level`` | ``preset`` | ``published``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from refsr.evaluation.presets import PRESET_LEVELS
from refsr.evaluation.protocol import PRESETS, Protocol
from refsr.report import paper
from refsr.report.provenance import Provenance
from refsr.report.render import Table, latex_escape, md_doc, md_table, tex_table, tidy_csv
from refsr.report.summary import (
    ABSENT_MD,
    MISSING_MD,
    NOT_GIVEN,
    cell_status,
    count_notes,
    fmt_cell,
)

_DIGITS = {"psnr": 2, "ssim": 3}
_DASH = "\u2014"


def _pair(row: Mapping | None, lpips_available: bool) -> str:
    """``PSNR / SSIM`` of a summary row; the table marks for absent, missing and not given."""
    if row is None:
        return MISSING_MD
    parts = [fmt_cell(row, m, lpips_available, _DIGITS) for m in ("psnr", "ssim")]
    if len(set(parts)) == 1 and parts[0] in (ABSENT_MD, MISSING_MD, NOT_GIVEN):
        return parts[0]
    return " / ".join(parts)


def _num(v: float, digits: int, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return _DASH
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _tex(cells: Sequence[str]) -> list[str]:
    return [latex_escape(c) for c in cells]


def _levels_part(summary, ds, methods, levels, prov, origins, lpips_ok, run_preset, csv_rows):
    sel = summary[summary["dataset"] == ds]
    by = {(r["model"], r["level"]): r for r in sel.to_dict("records")}
    rows = []
    for m in methods:
        cells = [prov.row(m), origins.get(m, "")]
        for lv in levels:
            row = by.get((m, lv))
            cells.append(_pair(row, lpips_ok))
            ok = row is not None and cell_status(row, "psnr", lpips_ok) == "ok"
            csv_rows.append({"part": "level", "dataset": ds, "method": m, "origin": origins.get(m, ""),
                             "level": lv, "preset": run_preset, "psnr": row["psnr"] if ok else math.nan,
                             "ssim": row["ssim"] if ok else math.nan})
        rows.append(cells)
    return ["Method", "SR images from", *levels], rows, count_notes(sel)


def _presets_part(presets, ds, methods, prov, csv_rows):
    sel = presets[presets["dataset"] == ds]
    by = {(r["model"], r["level"], r["preset"]): r for r in sel.to_dict("records")}
    levels = [lv for lv in PRESET_LEVELS if lv in set(sel["level"])]
    header = ["Method"] + [f"{lv} {p}" for lv in levels for p in PRESETS]
    rows = []
    for m in methods:
        cells = [prov.row(m)]
        for lv in levels:
            for p in PRESETS:
                r = by.get((m, lv, p))
                cells.append(NOT_GIVEN if r is None else f"{_num(r['psnr'], 2)} / {_num(r['ssim'], 3)}")
                if r is not None:
                    csv_rows.append({"part": "preset", "dataset": ds, "method": m, "level": lv, "preset": p,
                                     "psnr": r["psnr"], "ssim": r["ssim"]})
        rows.append(cells)
    return header, rows, levels


def why_not(pub: paper.Published, methods: Sequence[str], levels: Sequence[str], resize: str) -> str | None:
    """None when ``pub`` can be set beside ours under its own preset (scored for every preset
    here), else why not (:func:`refsr.report.paper.comparable`)."""
    if pub.protocol is not None and pub.protocol not in PRESETS:
        return f"its protocol ({pub.protocol}) is none of refsr's presets"
    return paper.comparable(pub, pub.protocol or "", levels, methods, resize=resize)


def _published_part(summary, presets, ds, methods, levels, prov, resize, run_preset, csv_rows):
    main = {(r["model"], r["level"]): r for r in summary[summary["dataset"] == ds].to_dict("records")}
    pre = {(r["model"], r["level"], r["preset"]): r for r in presets[presets["dataset"] == ds].to_dict("records")}
    rows = []
    for pub in paper.PUBLISHED:
        why = why_not(pub, methods, levels, resize)
        ours = None
        if why is None:
            ours = pre.get((pub.model, pub.level, pub.protocol))
            if ours is None and pub.protocol == run_preset:
                ours = main.get((pub.model, pub.level))
            if ours is None:
                why = f"{pub.level} under {pub.protocol} not scored here (presets are scored at " \
                      f"{', '.join(PRESET_LEVELS)})"
            elif isinstance(ours["psnr"], float) and math.isnan(ours["psnr"]):
                why, ours = f"our {pub.model} at {pub.level} is incomplete (see the per-level table)", None
        psnr = ours["psnr"] if ours is not None else math.nan
        ssim = ours["ssim"] if ours is not None else math.nan
        rec = {"part": "published", "dataset": ds, "method": pub.model or "", "level": pub.level or "",
               "preset": pub.protocol or "", "published_method": pub.method, "paper_psnr": pub.psnr,
               "paper_ssim": pub.ssim, "psnr": psnr, "ssim": ssim, "delta_psnr": psnr - pub.psnr,
               "delta_ssim": ssim - pub.ssim, "comparable": why is None, "why_not": why or "",
               "source": pub.source, "url": pub.url}
        csv_rows.append(rec)
        rows.append([pub.method, pub.level or "not stated", pub.protocol or "not stated",
                     getattr(pub, "resize", None) or "not stated", _num(pub.psnr, 2), _num(pub.ssim, 4),
                     prov.row(pub.model) if why is None else _DASH, _num(psnr, 2), _num(ssim, 4),
                     _num(rec["delta_psnr"], 2, True), _num(rec["delta_ssim"], 4, True),
                     why or "same preset, level and LR", f"[{pub.source}]({pub.url})"])
    header = ["Published", "Level", "Preset", "LR resize", "Pub. PSNR", "Pub. SSIM", "Ours", "Ours PSNR",
              "Ours SSIM", "\u0394PSNR", "\u0394SSIM", "Comparison", "Source"]
    return header, rows


def benchmark_table(summary: pd.DataFrame, presets: pd.DataFrame, methods: Sequence[str],
                    datasets: Sequence[str], prov: Provenance, levels: Sequence[str],
                    origins: Mapping[str, str], protocol: Protocol, paper_dataset: str | None,
                    lpips_available: bool) -> Table:
    """The benchmark table of every dataset (see the module docstring)."""
    run_preset = protocol.preset if not protocol.overrides else ""
    csv_rows: list[dict] = []
    md_parts, tex_parts, notes_all = [], [], []
    for ds in datasets:
        n = prov.datasets.get(ds, "?")
        header, rows, notes = _levels_part(summary, ds, methods, levels, prov, origins, lpips_available,
                                            run_preset or "custom", csv_rows)
        notes_all += [x for x in notes if x not in notes_all]
        md_parts.append(f"*{ds}* ({n} test images): every method at every level, PSNR / SSIM under this "
                        f"run's protocol\n\n" + md_table(header, rows))
        tex_parts.append(tex_table(f"Benchmark on {ds}: every method at every level (PSNR/SSIM). "
                                   + prov.sentence([ds]), f"tab:benchmark_{ds}", "ll" + "c" * len(levels),
                                   [" & ".join(_tex(header)) + r" \\"], [_tex(r) for r in rows], notes))
        header, rows, plevels = _presets_part(presets, ds, methods, prov, csv_rows)
        if plevels:
            md_parts.append(f"*{ds}*: the same SR images under every protocol preset (PSNR / SSIM at "
                            f"{' and '.join(plevels)})\n\n" + md_table(header, rows))
            tex_parts.append(tex_table(f"The same SR images of {ds} under every protocol preset.",
                                       f"tab:benchmark_presets_{ds}", "l" + "c" * (len(header) - 1),
                                       [" & ".join(_tex(header)) + r" \\"], [_tex(r) for r in rows]))
        if ds == paper_dataset:
            header, rows = _published_part(summary, presets, ds, methods, levels, prov,
                                           protocol.resize, run_preset, csv_rows)
            subset = (f" Only {n} of the {paper.CUFED5_GROUPS} CUFED5 test groups were evaluated, so no "
                      "difference is a reproduction claim." if n != paper.CUFED5_GROUPS else "")
            md_parts.append(f"*{ds}*: published CUFED5 numbers beside ours under the same preset, level and "
                            f"LR.{subset}\n\n" + md_table(header, rows))
            tex_parts.append(tex_table(f"Published CUFED5 numbers vs ours on {ds}.{subset} "
                                       + paper.provenance_note(), f"tab:benchmark_published_{ds}",
                                       "llll" + "c" * 7 + "ll", [" & ".join(_tex(header)) + r" \\"],
                                       [_tex(r) for r in rows]))
    published = ("" if paper_dataset in datasets else
                 " Published numbers are CUFED5's: they appear when a dataset of kind cufed5 is evaluated.")
    caption = ("The RefSR benchmark: every method (trained here, run from imported released weights, or "
               "scored from external SR images) at every reference level under this run's protocol; the "
               f"same SR images at {' and '.join(PRESET_LEVELS)} under all four presets "
               f"({', '.join(PRESETS)}), showing how much the protocol alone moves a number; and the "
               "published numbers beside ours only where preset, level and LR resize match."
               + published + " " + prov.external_sentence(methods) + prov.sentence(datasets))
    columns = ["part", "dataset", "method", "origin", "level", "preset", "psnr", "ssim", "published_method",
               "paper_psnr", "paper_ssim", "delta_psnr", "delta_ssim", "comparable", "why_not", "source", "url"]
    csv = tidy_csv(pd.DataFrame(csv_rows, columns=columns))
    return Table("benchmark", csv, md_doc("RefSR benchmark", caption, "\n\n".join(md_parts), notes_all),
                 "\n".join(tex_parts))

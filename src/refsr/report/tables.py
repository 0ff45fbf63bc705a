"""The paper's tables, regenerated from the evaluation CSVs: CSV + Markdown + LaTeX (booktabs).

* **main** — models x datasets, PSNR / SSIM / LPIPS, every model at one reference level
  (``evaluation.main_level``, default L1 = the most similar reference; SISR models and
  bicubic ignore the reference, so their value is the same at every level).
* **per_level** — models x levels (L1..L5, LR, HR) for each dataset: the paper's
  reference-similarity study, extended with LPIPS.
* **paper_vs_reproduced** — on a CUFED5 dataset only: the published SRNTT Table 1 values,
  ours at the main level, and the differences (see :mod:`refsr.report.paper`).

Every caption names the protocol (:meth:`refsr.metrics.Protocol.describe`), the dataset(s),
the VGG19 and LPIPS weight provenance, the git commit and a config hash.

Missing cells. A table cell is the mean over *all* test images of its dataset. When any
image has no SR output for that (model, level) — or, for LPIPS, no value — the mean is
**not reported**: the CSV holds NaN and ``n_missing`` > 0, Markdown shows ``—†`` and LaTeX
``---$^\\dagger$``, and a footnote says "k of N images missing". A mean over fewer
images is never shown as if it were complete. LPIPS that could not be computed at all
(weights unavailable, or disabled) is ``n/a``, with the reason in the caption.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import write_text
from ..datasets.layout import EVAL_LEVELS
from ..evaluate import METRICS
from . import paper

log = logging.getLogger(__name__)

LABEL = {"psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS"}
ARROW = {"psnr": "\u2191", "ssim": "\u2191", "lpips": "\u2193"}
DIGITS = {"psnr": 2, "ssim": 4, "lpips": 4}  # main table
COMPACT_DIGITS = {"psnr": 2, "ssim": 3, "lpips": 3}  # per-level cells
REFSR_MODELS = ("srntt_l2", "srntt")

MISSING_MD = "\u2014\u2020"  # em dash + dagger
MISSING_TEX = r"---$^\dagger$"
UNVERIFIED = "\u2021"  # double dagger: a published value not checked against the paper
NA = "n/a"
SUMMARY_COLUMNS = ("dataset", "model", "level", "n_images", "n_missing", *METRICS)


# --------------------------------------------------------------------------------------
# provenance
# --------------------------------------------------------------------------------------


def git_commit(repo_dir: str | os.PathLike | None = None) -> str:
    """``git rev-parse --short HEAD`` of ``repo_dir`` (+ ``-dirty`` with uncommitted
    changes to tracked files); ``"unknown"`` outside a repository or without git."""
    cwd = str(repo_dir) if repo_dir else None
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True,
                              text=True, timeout=20)
        if head.returncode != 0 or not head.stdout.strip():
            return "unknown"
        commit = head.stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=20)
        return commit + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def config_hash(config: Mapping[str, Any]) -> str:
    """First 12 hex digits of the sha256 of the JSON-dumped config (keys sorted)."""
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _sha256_12(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def vgg_provenance(weights: str | os.PathLike | None = None) -> str:
    """Where the VGG19 weights come from (``REFSR_VGG19_WEIGHTS`` wins), with a file hash."""
    from ..vgg import resolve_source

    source, origin = resolve_source(weights)
    path = Path(source)
    if path.is_file():
        return f"{path.name} ({origin}, sha256 {_sha256_12(path)})"
    return f"{source} ({origin})"


def lpips_provenance(sidecars: Iterable[Mapping[str, Any]]) -> tuple[str, bool]:
    """One phrase for LPIPS over all evaluation jobs, and whether every job had it."""
    sources, reasons = set(), set()
    for meta in sidecars:
        info = meta.get("lpips", {})
        if info.get("available"):
            sources.add(str(info.get("source")))
        else:
            reasons.add(str(info.get("reason") or "unavailable"))
    if sources and not reasons:
        return f"LPIPS AlexNet weights: {'; '.join(sorted(sources))}", True
    if reasons and not sources:
        return f"LPIPS not computed (n/a): {'; '.join(sorted(reasons))}", False
    return (f"LPIPS mixed: weights {'; '.join(sorted(sources))} for some jobs, not computed for "
            f"others ({'; '.join(sorted(reasons))})", False)


@dataclass
class Provenance:
    """What every caption states besides the table's own description."""

    protocol: str
    vgg19: str
    lpips: str
    commit: str
    config_hash: str
    datasets: dict[str, int] = field(default_factory=dict)  # name -> number of test images

    def sentence(self, datasets: Sequence[str] | None = None) -> str:
        names = list(datasets) if datasets is not None else list(self.datasets)
        ds = ", ".join(f"{n} ({self.datasets.get(n, '?')} test images)" for n in names)
        return (f"Dataset: {ds}. Protocol: {self.protocol} VGG19 weights: {self.vgg19}. "
                f"{self.lpips}. Code: git {self.commit}; config sha256 {self.config_hash}.")


# --------------------------------------------------------------------------------------
# aggregation
# --------------------------------------------------------------------------------------


def summarise(evals: Mapping[tuple[str, str], pd.DataFrame],
              levels: Sequence[str] = EVAL_LEVELS) -> pd.DataFrame:
    """Tidy means: one row per (dataset, model, level).

    ``n_images`` is the number of test images of the dataset (union over its models);
    ``n_missing`` the images without an SR output for that (model, level). A metric's
    mean is NaN unless *every* image has a value; ``{metric}_n`` counts those that do.
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
            row: dict[str, Any] = {"dataset": ds, "model": model, "level": level, "n_images": n,
                                   "n_missing": n - len(scored)}
            for m in METRICS:
                vals = part[m].dropna()
                row[f"{m}_n"] = len(vals)
                row[m] = float(vals.mean()) if len(vals) == n and n > 0 else math.nan
            rows.append(row)
    cols = list(SUMMARY_COLUMNS) + [f"{m}_n" for m in METRICS]
    return pd.DataFrame(rows, columns=cols)


def cell_status(row: Mapping[str, Any], metric: str, lpips_available: bool) -> str:
    """``ok`` | ``missing`` (some images lack a value) | ``na`` (LPIPS not computed at all)."""
    if row[f"{metric}_n"] == row["n_images"] and row["n_images"] > 0:
        return "ok"
    if metric == "lpips" and not lpips_available and row["n_missing"] < row["n_images"]:
        return "na"
    return "missing"


def _num(value: float, digits: int) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}f}"


def fmt_cell(row, metric, lpips_available, digits, tex=False) -> str:
    status = cell_status(row, metric, lpips_available)
    if status == "ok":
        return _num(row[metric], digits[metric])
    if status == "na":
        return NA
    return MISSING_TEX if tex else MISSING_MD


def missing_notes(summary: pd.DataFrame, lpips_available: bool,
                  metrics: Sequence[str] = METRICS) -> list[str]:
    """Footnotes for every missing-marked cell of ``metrics``."""
    notes = []
    for row in summary.to_dict("records"):
        where = f"{row['dataset']}, {row['model']}, {row['level']}"
        if row["n_missing"] > 0:
            notes.append(f"\u2020 {where}: {row['n_missing']} of {row['n_images']} images "
                         f"missing (no SR output); mean not reported.")
            continue
        for m in metrics:
            if cell_status(row, m, lpips_available) == "missing":
                k = row["n_images"] - row[f"{m}_n"]
                notes.append(f"\u2020 {where}: {LABEL[m]} missing for {k} of {row['n_images']} "
                             f"images; mean not reported.")
    return notes


# --------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------

_TEX_UNICODE = [
    ("\u21132", r"$\ell_2$"), ("\u2113", r"$\ell$"), ("\u03c3", r"$\sigma$"),
    ("\u00d7", r"$\times$"), ("\u2014", "---"), ("\u2013", "--"), ("\u2020", r"$^\dagger$"),
    ("\u2021", r"$^\ddagger$"),
    ("\u2191", r"$\uparrow$"), ("\u2193", r"$\downarrow$"), ("\u0394", r"$\Delta$"),
]
_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
                "`": r"\textasciigrave{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX specials; map the few Unicode symbols the captions use to math."""
    out = "".join(_TEX_SPECIAL.get(c, c) for c in str(text))
    for uni, tex in _TEX_UNICODE:
        out = out.replace(uni, tex)
    return out


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(":---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def tex_table(caption: str, label: str, colspec: str, head: Sequence[str],
              rows: Sequence[Sequence[str]], notes: Sequence[str] = ()) -> str:
    """A booktabs table; ``head`` lines are raw LaTeX (already escaped), rows are cells."""
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{latex_escape(caption)}}}", rf"\label{{{label}}}",
             rf"\begin{{tabular}}{{{colspec}}}", r"\toprule", *head, r"\midrule"]
    lines += [" & ".join(r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if notes:
        lines += [r"\par\smallskip", r"{\footnotesize " + r" \\ ".join(latex_escape(n) for n in notes)
                  + "}"]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _md_doc(title: str, caption: str, body: str, notes: Sequence[str]) -> str:
    text = f"**{title}.** {caption}\n\n{body}"
    if notes:
        text += "\n" + "\n".join(f"{n}  " for n in notes) + "\n"
    return text


def _tidy_csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, float_format="%.6f", na_rep="nan")


@dataclass
class Table:
    """One table in its three formats."""

    name: str
    csv: str
    md: str
    tex: str

    def write(self, csv_path, md_path, tex_path) -> None:
        write_text(csv_path, self.csv)
        write_text(md_path, self.md)
        write_text(tex_path, self.tex)


def _models_note(models: Sequence[str], level: str) -> str:
    ref = [m for m in models if m in REFSR_MODELS]
    other = [m for m in models if m not in REFSR_MODELS]
    parts = []
    if ref:
        parts.append(f"Reference-based models ({', '.join(ref)}) use the {level} reference "
                     f"({'the most similar' if level == 'L1' else 'level ' + level}), the "
                     "convention of the published CUFED5 comparisons")
    if other:
        parts.append(f"{', '.join(other)} ignore the reference (same output at every level)")
    return "; ".join(parts) + "."


def main_table(summary: pd.DataFrame, models: Sequence[str], datasets: Sequence[str],
               prov: Provenance, level: str, lpips_available: bool) -> Table:
    """Models x datasets at ``level``: PSNR / SSIM / LPIPS."""
    sel = summary[summary["level"] == level]
    caption = (f"Mean PSNR (dB), SSIM and LPIPS over each dataset's test images, x4. "
               f"{_models_note(models, level)} " + prov.sentence(datasets))
    notes = missing_notes(sel, lpips_available)
    by = {(r["dataset"], r["model"]): r for r in sel.to_dict("records")}
    header = ["Model"] + [f"{ds} {LABEL[m]}{ARROW[m]}" for ds in datasets for m in METRICS]
    md_rows, tex_rows = [], []
    for model in models:
        cells_md, cells_tex = [model], [latex_escape(model)]
        for ds in datasets:
            row = by.get((ds, model))
            for m in METRICS:
                if row is None:
                    cells_md.append(MISSING_MD)
                    cells_tex.append(MISSING_TEX)
                else:
                    cells_md.append(fmt_cell(row, m, lpips_available, DIGITS))
                    cells_tex.append(fmt_cell(row, m, lpips_available, DIGITS, tex=True))
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
    tidy = sel[list(SUMMARY_COLUMNS)]
    return Table("main", _tidy_csv(tidy),
                 _md_doc(title, caption, md_table(header, md_rows), notes),
                 tex_table(f"{title}. {caption}", "tab:main", colspec, head, tex_rows, notes))


def _level_cell(row, lpips_available, tex=False) -> str:
    parts = [fmt_cell(row, m, lpips_available, COMPACT_DIGITS, tex) for m in METRICS]
    missing = MISSING_TEX if tex else MISSING_MD
    if missing in parts and len(set(parts)) == 1:
        return missing
    return ("/" if tex else " / ").join(parts)


def per_level_table(summary: pd.DataFrame, models: Sequence[str], datasets: Sequence[str],
                    prov: Provenance, lpips_available: bool,
                    levels: Sequence[str] = EVAL_LEVELS) -> Table:
    """For each dataset: models x levels, cells PSNR / SSIM / LPIPS."""
    caption = ("PSNR (dB) / SSIM / LPIPS per reference level, x4: L1..L5 from the most to the "
               "least similar reference, LR = the LR input as its own reference (SISR mode), "
               "HR = the ground truth as reference (oracle upper bound). bicubic and SISR models "
               "ignore the reference. " + prov.sentence(datasets))
    md_parts, tex_parts, notes_all = [], [], []
    for ds in datasets:
        sel = summary[summary["dataset"] == ds]
        notes = missing_notes(sel, lpips_available)
        notes_all += notes
        by = {(r["model"], r["level"]): r for r in sel.to_dict("records")}
        md_rows, tex_rows = [], []
        for model in models:
            md_row, tex_row = [model], [latex_escape(model)]
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
    tidy = summary[summary["dataset"].isin(datasets)][list(SUMMARY_COLUMNS)]
    return Table("per_level", _tidy_csv(tidy),
                 _md_doc(title, caption, "\n".join(md_parts), notes_all), "\n".join(tex_parts))


def _opt_num(v: float, digits: int, signed: bool = False) -> str | None:
    if isinstance(v, float) and math.isnan(v):
        return None
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def paper_table(summary: pd.DataFrame, models: Sequence[str], dataset: str, prov: Provenance,
                level: str) -> Table:
    """Published SRNTT Table 1 (CUFED5) values vs ours at ``level``, with differences."""
    sel = summary[(summary["dataset"] == dataset) & (summary["level"] == level)]
    by = {r["model"]: r for r in sel.to_dict("records")}
    rows, md_rows, tex_rows = [], [], []
    for model in models:
        pub = paper.published(model)
        row = by.get(model)
        ours = {m: (row[m] if row is not None and cell_status(row, m, True) == "ok" else math.nan)
                for m in ("psnr", "ssim")}
        rec = {"model": model, "paper_model": pub.paper_name if pub else "",
               "paper_psnr": pub.psnr if pub else math.nan,
               "paper_ssim": pub.ssim if pub else math.nan,
               "psnr": ours["psnr"], "ssim": ours["ssim"],
               "delta_psnr": ours["psnr"] - pub.psnr if pub else math.nan,
               "delta_ssim": ours["ssim"] - pub.ssim if pub else math.nan,
               "level": level, "n_missing": row["n_missing"] if row is not None else math.nan,
               "source": pub.source if pub else "not reported in the paper",
               "verified": bool(pub.verified) if pub else False}
        rows.append(rec)
        mark = "" if (pub is None or pub.verified) else UNVERIFIED
        f = _opt_num
        incomplete = row is None or row["n_missing"] > 0
        vals = [f(rec["paper_psnr"], 2), f(rec["paper_ssim"], 3), f(rec["psnr"], 2),
                f(rec["ssim"], 4), f(rec["delta_psnr"], 2, True), f(rec["delta_ssim"], 3, True)]
        md_cells, tex_cells = [], []
        for i, v in enumerate(vals):
            if v is None:
                gap = 2 <= i and incomplete  # ours missing -> dagger; paper absent -> dash
                md_cells.append(MISSING_MD if gap else "\u2014")
                tex_cells.append(MISSING_TEX if gap else "---")
            else:
                md_cells.append(v + (mark if i < 2 else ""))
                tex_cells.append(v + (r"$^\ddagger$" if mark and i < 2 else ""))
        name = rec["paper_model"] or "\u2014"
        md_rows.append([model, name, *md_cells, rec["source"]])
        tex_rows.append([latex_escape(model), latex_escape(name), *tex_cells,
                         latex_escape(rec["source"])])
    notes = missing_notes(sel, True, ("psnr", "ssim"))
    if any(not r["verified"] and r["paper_model"] for r in rows):
        notes = [f"{UNVERIFIED} unverified published value (see the caption)."] + notes
    n = prov.datasets.get(dataset)
    subset = (f" NOTE: only {n} of the {paper.CUFED5_GROUPS} CUFED5 test groups were evaluated, "
              "so the comparison is indicative only." if n != paper.CUFED5_GROUPS else "")
    caption = (f"Published vs reproduced on {dataset} at reference level {level} (ours; "
               f"differences = ours - published).{subset} {paper.provenance_note()} "
               + prov.sentence([dataset]))
    header = ["Model", "Paper row", "Paper PSNR", "Paper SSIM", "Ours PSNR", "Ours SSIM",
              "\u0394PSNR", "\u0394SSIM", "Source"]
    head = [" & ".join(latex_escape(h) for h in header) + r" \\"]
    title = "Paper vs reproduced (SRNTT CVPR 2019, CUFED5)"
    csv = pd.DataFrame(rows).to_csv(index=False, float_format="%.6f", na_rep="nan")
    return Table("paper_vs_reproduced", csv, _md_doc(title, caption, md_table(header, md_rows), notes),
                 tex_table(f"{title}. {caption}", "tab:paper_vs_reproduced", "llcccccc l", head,
                           tex_rows, notes))


# --------------------------------------------------------------------------------------
# the tables stage
# --------------------------------------------------------------------------------------


def load_evals(csv_paths: Iterable[str | os.PathLike]) -> tuple[dict, dict]:
    """``results/eval/{dataset}/{model}.csv`` (+ ``.json``) -> {(dataset, model): df / meta}."""
    from ..evaluate import read_eval_csv, read_sidecar

    evals, metas = {}, {}
    for p in csv_paths:
        p = Path(p)
        key = (p.parent.name, p.stem)
        evals[key] = read_eval_csv(p)
        metas[key] = read_sidecar(p.with_suffix(".json"))
    return evals, metas


def build_provenance(config: Mapping[str, Any], metas: Mapping, evals: Mapping,
                     repo_dir: str | os.PathLike | None) -> tuple[Provenance, bool]:
    from ..evaluate import protocol_from_config

    lp_text, lp_ok = lpips_provenance(metas.values())
    datasets: dict[str, int] = {}
    for (ds, _), df in evals.items():
        datasets[ds] = max(datasets.get(ds, 0), int(df["image"].nunique()))
    prov = Provenance(protocol=protocol_from_config(config).describe(),
                      vgg19=vgg_provenance(config.get("vgg19_weights")), lpips=lp_text,
                      commit=git_commit(repo_dir), config_hash=config_hash(config),
                      datasets=datasets)
    return prov, lp_ok


def run_tables(csv_paths: Sequence[str | os.PathLike], config: Mapping[str, Any],
               models: Sequence[str], datasets: Sequence[str], outputs: Mapping[str, Any],
               repo_dir: str | os.PathLike | None = None,
               paper_dataset: str | None = None) -> dict[str, Table]:
    """The tables rule. ``outputs`` has ``{main,per_level[,paper]}_{csv,md,tex}`` paths."""
    evals, metas = load_evals(csv_paths)
    prov, lp_ok = build_provenance(config, metas, evals, repo_dir)
    level = str((config.get("evaluation") or {}).get("main_level", "L1"))
    summary = summarise(evals)
    tables = {"main": main_table(summary, models, datasets, prov, level, lp_ok),
              "per_level": per_level_table(summary, models, datasets, prov, lp_ok)}
    if paper_dataset is not None:
        tables["paper"] = paper_table(summary, models, paper_dataset, prov, level)
    for key, table in tables.items():
        table.write(outputs[f"{key}_csv"], outputs[f"{key}_md"], outputs[f"{key}_tex"])
        log.info("wrote the %s table", table.name)
    n_missing = int(summary["n_missing"].sum())
    if n_missing:
        log.warning("%d (image, level) cells have no SR output; their means are marked, "
                    "not reported", n_missing)
    return tables

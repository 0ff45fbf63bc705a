"""The tables of ``BENCHMARKS.md``, regenerated from a suite run's results."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from refsr.core.atomic import atomic_path
from refsr.core.markdown import markdown_lines
from refsr.matching.naive import naive_bytes

#: HR sizes of the swapping benchmark.
SIZES = ("160x160", "500x332", "1000x1000")
MARK_BEGIN, MARK_END = "<!-- bench:begin -->", "<!-- bench:end -->"


def _f(x, digits: int = 2, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}{unit}"


def _targets(results: dict) -> list[str]:
    """The performance goals of the matching (docs/architecture.md) against this run
    (CPU, 500x332 unless stated)."""
    r, big, q = results.get("swap_500x332"), results.get("swap_1000x1000"), results.get("approx_quality")
    if not r or "error" in r:
        return []

    def mark(ok: bool | None) -> str:
        return "–" if ok is None else ("met" if ok else "**not met**")

    a = r.get("approximate") or {}
    peak, peak_big = r.get("peak_extra_mb"), (big or {}).get("peak_extra_mb")
    dq = None if not q or "mean_delta_db" not in q else q["mean_delta_db"]
    rows = [("exact search throughput vs fp32 GEMM (same run)", "≥ 80 %",
             _f(r["gemm_fraction"] * 100, 0, " %"), r["gemm_fraction"] >= 0.8),
            ("exact search peak extra memory, 500x332 / 1000x1000", "≤ 300 MB",
             f"{_f(peak, 0)} / {_f(peak_big, 0)} MB",
             None if peak is None or peak_big is None else max(peak, peak_big) <= 300),
            ("approximate matching speed-up vs exact (end-to-end swap in brackets)", "≥ 10×",
             f"{_f(a.get('match_speedup'), 1, '×')} ({_f(a.get('speedup'), 1, '×')})",
             None if not a else a["match_speedup"] >= 10),
            ("approximate mean S* vs exact", "≥ 99 %", _f(a.get("score_ratio", float("nan")) * 100, 2, " %"),
             None if not a else a["score_ratio"] >= 0.99),
            ("approximate: SRNTT mean PSNR change, embedded test set L1..L5", "≤ 0.05 dB",
             _f(dq, 3, " dB"), None if dq is None else abs(dq) <= 0.05),
            ("stitching share of the (exact) swap time", "≤ 5 %", _f(r["stitch_fraction"] * 100, 1, " %"),
             r["stitch_fraction"] <= 0.05)]
    table = markdown_lines(["target", "wanted", "measured", ""],
                           [[name, want, got, mark(ok)] for name, want, got, ok in rows], "--r-")
    return ["### Matching goals in this run", "", *table, ""]


_SWAP_HEADER = ["HR size", "method", "match s", "stitch s", "total s", "GFLOP/s (nominal)", "vs fp32 GEMM",
                "match peak MB", "stitch peak MB", "stitch share", "mean S* vs exact", "speed-up vs exact"]


def _swap_rows(results: dict) -> list[list[str]]:
    """The rows of the feature-swapping table: each size's methods and the GEMM it is compared to."""
    blank = [""] * len(_SWAP_HEADER)
    rows = []
    for size in SIZES:
        r = results.get(f"swap_{size}")
        if not r or "error" in r:
            if r:
                rows.append([size, f"error: {r['error']}", *blank[2:]])
            continue
        gemm = r["gemm_gflop_per_s"]
        for method in ("exact", "approximate", "naive"):
            x = r if r["mode"] == method else r.get(method)
            if x is None:
                if method == "naive":
                    need = naive_bytes(r["content_positions"], r["ref_patches"], r["patch_dim"]) / 2**30
                    rows.append([size, "naive full matrix", f"skipped: needs {need:.1f} GB", *blank[3:]])
                continue
            ratio = 1.0 if x is r else x.get("score_ratio")
            speed = 1.0 if x is r else x.get("speedup")
            rows.append([size, method if method != "naive" else "naive full matrix", _f(x["match_seconds"], 3),
                         _f(x["stitch_seconds"], 3), _f(x["seconds"], 3), _f(x["gflop_per_s"], 0),
                         _f(x["gflop_per_s"] / gemm * 100, 0, " %"), _f(x.get("peak_extra_mb"), 0),
                         _f(x.get("stitch_peak_extra_mb"), 0), _f(x["stitch_fraction"] * 100, 1, " %"),
                         _f(ratio * 100 if ratio is not None else None, 2, " %"), _f(speed, 1, "×")])
        rows.append([size, "*fp32 GEMM 4096² (same run)*", "", "", "", _f(gemm, 0), "100 %", *blank[7:]])
    rows.append(["any", "GPU (TF32/bf16), exact and approximate", "not yet measured", *blank[3:]])
    return rows


def render_table(results: dict) -> str:
    """The BENCHMARKS.md tables (markdown) from a suite's results."""
    m = results.get("machine", {})
    lines = [f"Measured on: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('threads', '?')} torch "
             f"threads, {m.get('memory_gb', '?')} GB RAM, torch {m.get('torch', '?')}; load average at start "
             f"{m.get('load_average', '?')}. Medians; seconds are wall-clock.", ""]
    lines += _targets(results)
    lines += ["### Feature swapping (match at relu3_1 + stitch at relu3_1/2_1/1_1), CPU", "",
              *markdown_lines(_SWAP_HEADER, _swap_rows(results), "--" + "r" * 10)]

    q = results.get("approx_quality")
    if q:
        lines += ["", "### Approximate matching: SRNTT PSNR on the embedded test set (L1..L5)", ""]
        if "skipped" in q or "error" in q:
            lines.append(f"Not measured: {q.get('skipped') or q.get('error')}.")
        else:
            levels = q.get("mean_delta_db_per_level", {})
            lines += markdown_lines(
                ["images", "mean PSNR exact", "mean PSNR approximate", "mean change",
                 f"change per level ({', '.join(levels)})", "largest change on one image"],
                [[q["images"], f"{_f(q['mean_psnr_exact'], 3)} dB", f"{_f(q['mean_psnr_approx'], 3)} dB",
                  _f(q["mean_delta_db"], 3, " dB"), f"{', '.join(_f(v, 3) for v in levels.values())} dB",
                  f"{_f(q['max_abs_delta_db'], 3)} dB"]], "r" * 6)

    lines += _bf16_lines(results.get("bf16_quality"))

    t = results.get("train")
    if t and "rows" in t:
        lines += ["", f"### Training, CPU (batch {t['rows'][0]['batch_size']} of {t['rows'][0]['patch_px']} px "
                      "patches; median of timed iterations after one warm-up)", ""]
        rows = []
        for row in t["rows"]:
            a = row["arch"]
            net = f"{row['size']}: {a.get('n_blocks')} blocks, {a.get('n_feats')} ch" + (
                f", transfer {a['n_blocks_transfer']}" if "n_blocks_transfer" in a else "")
            rows.append([row["model"], net, _f(row["it_per_s"], 2), _f(row["seconds_per_it"], 2)])
        rows += [["correspondence cache", "relu3_1 matching per pair", "", _f(t["cache_seconds_per_pair"], 3)],
                 ["all models", "GPU", "not yet measured", ""]]
        lines += markdown_lines(["model", "network", "it/s", "s/it"], rows, "--rr")
    elif t:
        lines += ["", f"Training benchmark failed: {t.get('error')}"]

    i = results.get("infer")
    if i and "rows" in i:
        lines += ["", f"### Inference, CPU (HR {i['hr_size']}, LR {i['lr_size']}, one reference, "
                      f"tile {i['tile']}; {i['note']})", ""]
        rows = [[row["model"], row["size"], row["match_mode"] or "–", _f(row["seconds"], 3)] for row in i["rows"]]
        rows.append(["all models", "GPU", "", "not yet measured"])
        lines += markdown_lines(["model", "network", "matching", "s / image"], rows, "---r")

    r = results.get("relevance")
    if r and "rows" in r:
        lines += ["", "### TTSR relevance search + texture transfer, CPU (one same-size reference; the released "
                      "code's relevance matrix computed, not run)", ""]
        rows = [[row["hr_size"], _f(row["search_seconds"], 2), _f(row["transfer_seconds"], 2),
                 _f(row["search_peak_mb"], 0), _f(row["transfer_peak_mb"], 0), _f(row["max_mb"], 0),
                 _f(row["released_matrix_mb_1_refs"], 0), _f(row["released_matrix_mb_5_refs"], 0)]
                for row in r["rows"]]
        lines += markdown_lines(["HR size", "search s", "transfer s", "search peak MB", "transfer peak MB",
                                 "budget max_mb", "released matrix MB, 1 ref", "5 refs"], rows, "-" + "r" * 7)
    elif r:
        lines += ["", f"Relevance benchmark failed: {r.get('error')}"]

    d = results.get("dag")
    if d:
        if "error" in d:
            row = ["snakemake -n", f"error: {d['error']}"]
        else:
            row = [f"`snakemake -n`, CUFED5-sized config ({d['groups']} groups, {d['models']} models, "
                   f"{d['levels']} levels{', ' + str(d['jobs']) + ' jobs' if d.get('jobs') else ''})",
                   _f(d["seconds"], 2)]
        lines += ["", "### Workflow", "", *markdown_lines(["what", "seconds"], [row], "-r")]
    return "\n".join(lines) + "\n"


def _bf16_lines(q: dict | None) -> list[str]:
    if not q:
        return []
    lines = ["", "### bf16 network pass (`inference.dtype: bf16`): PSNR change on the embedded test set "
                 "(L1..L5), trained models", ""]
    if "skipped" in q or "error" in q:
        return [*lines, f"Not measured: {q.get('skipped') or q.get('error')}."]
    levels = list(next(iter(q["models"].values()))["mean_delta_db_per_level"])
    rows = [[m, r["images"], f"{_f(r['mean_psnr_fp32'], 3)} dB", f"{_f(r['mean_psnr_bf16'], 3)} dB",
             f"{', '.join(_f(r['mean_delta_db_per_level'].get(lv, float('nan')), 4) for lv in levels)} dB",
             f"{_f(r['max_abs_delta_db'], 4)} dB"] for m, r in q["models"].items()]
    return lines + markdown_lines(["model", "images", "mean PSNR fp32", "mean PSNR bf16",
                                   f"change per level ({', '.join(levels)})", "largest change on one image"],
                                  rows, "-" + "r" * 5)


def update_markdown(path: str | os.PathLike, results: dict) -> None:
    """Replace the text between the bench markers of ``path`` (created if missing) with the tables."""
    path = Path(path)
    text = path.read_text() if path.is_file() else f"# Benchmarks\n\n{MARK_BEGIN}\n{MARK_END}\n"
    if MARK_BEGIN not in text or MARK_END not in text:
        text = text.rstrip("\n") + f"\n\n{MARK_BEGIN}\n{MARK_END}\n"
    head, rest = text.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(f"{head}{MARK_BEGIN}\n<!-- generated by `make bench` (refsr bench all); "
                             f"do not edit by hand -->\n\n{render_table(results)}\n{MARK_END}{tail}")

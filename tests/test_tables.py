"""Tables: aggregation against hand values, missing-cell marking, protocol in every caption,
booktabs LaTeX, provenance, the paper table, and the rules in the DAG."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from refsr.core.config import validate
from refsr.data.layout import EVAL_LEVELS
from refsr.evaluation.protocol import protocol_from_config
from refsr.evaluation.results import COLUMNS
from refsr.report import paper
from refsr.report.provenance import code_version, config_hash, git_commit
from refsr.report.render import latex_escape
from refsr.report.summary import MISSING_MD, MISSING_TEX, NA, summarise
from refsr.stages.tables import run_tables

ROOT = Path(__file__).resolve().parents[1]
CONFIG = validate({"scale": 4, "resize": "matlab", "vgg19_weights": None,
                   "evaluation": {"y_channel": True, "crop": 4, "main_level": "L1"}})
MODELS = ["bicubic", "srntt"]
IMAGES = ["img0", "img1", "img2"]


def _eval_df(base: float, lpips: bool = True, drop=()) -> pd.DataFrame:
    """psnr = base + image index + level index; ssim = psnr / 100; lpips = 1 / psnr."""
    rows = []
    for i, img in enumerate(IMAGES):
        for j, lv in enumerate(EVAL_LEVELS):
            p = base + i + j
            row = {"image": img, "level": lv, "psnr": p, "ssim": p / 100,
                   "lpips": 1 / p if lpips else math.nan, "stlpips": 2 / p}
            if (img, lv) in drop:
                row.update(psnr=math.nan, ssim=math.nan, lpips=math.nan, stlpips=math.nan)
            rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def write_evals(tmp_path, dataset="tiny", lpips=True, drop=None, reason="offline test"):
    """Eval CSV + sidecar per model; ``drop`` maps model -> (image, level) cells to blank."""
    drop = drop or {}
    paths = []
    for k, model in enumerate(MODELS):
        df = _eval_df(20.0 + 5 * k, lpips, drop.get(model, ()))
        csv = tmp_path / "eval" / dataset / f"{model}.csv"
        csv.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(csv, index=False, na_rep="nan")
        info = ({"enabled": True, "available": True, "reason": None, "source": "alexnet-test.pth"}
                if lpips else {"enabled": True, "available": False, "reason": reason,
                               "source": None})
        csv.with_suffix(".json").write_text(json.dumps({
            "lpips": info, "stlpips": {"enabled": True, "net": "alex", "source": "stlpips-test"}}))
        paths.append(csv)
    return paths


def outputs(tmp_path, paper_table=False):
    names = [("main", "main"), ("per_level", "per_level")]
    if paper_table:
        names.append(("paper", "paper_vs_reproduced"))
    return {f"{k}_{e}": tmp_path / "tables" / f"{n}.{e}" for k, n in names for e in ("csv", "md", "tex")}


def test_summarise_means_by_hand():
    evals = {("tiny", "bicubic"): _eval_df(20.0)}
    s = summarise(evals).set_index("level")
    # mean over images 0, 1, 2 of 20 + i + j = 21 + j
    for j, lv in enumerate(EVAL_LEVELS):
        assert s.loc[lv, "psnr"] == pytest.approx(21 + j)
        assert s.loc[lv, "ssim"] == pytest.approx((21 + j) / 100)
        assert s.loc[lv, "lpips"] == pytest.approx(np.mean([1 / (20 + i + j) for i in range(3)]))
        assert s.loc[lv, "n_images"] == 3 and s.loc[lv, "n_missing"] == 0


def test_summarise_never_averages_over_fewer_images():
    evals = {("tiny", "srntt"): _eval_df(20.0, drop={("img1", "L3")})}
    s = summarise(evals).set_index("level")
    assert math.isnan(s.loc["L3", "psnr"]) and s.loc["L3", "n_missing"] == 1
    assert s.loc["L2", "psnr"] == pytest.approx(22.0)


def test_tables_written_with_protocol_provenance_and_booktabs(tmp_path):
    csvs = write_evals(tmp_path)
    out = outputs(tmp_path)
    run_tables(csvs, CONFIG, MODELS, ["tiny"], out)
    describe = protocol_from_config(CONFIG).describe()
    for key, path in out.items():
        assert path.is_file() and path.stat().st_size > 0, key
        text = path.read_text()
        if key.endswith("_md"):
            assert describe in text  # the protocol, verbatim
            assert "VGG19 weights:" in text and "alexnet-test.pth" in text
            assert f"git {code_version()}" in text  # the checkout refsr runs from
            assert f"config sha256 {config_hash(CONFIG)}" in text
            assert "tiny (3 test images)" in text
        if key.endswith("_tex"):
            assert latex_escape(describe) in text
            for cmd in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}", r"\caption{"):
                assert cmd in text, (key, cmd)
            assert r"\hline" not in text
            assert text.count(r"\begin{table}") == text.count(r"\end{table}")
            assert "σ" not in text and "×" not in text  # unicode mapped to math
    main = pd.read_csv(out["main_csv"])
    assert list(main["model"]) == MODELS and set(main["level"]) == {"L1"}
    assert main.loc[main["model"] == "srntt", "psnr"].iloc[0] == pytest.approx(26.0)
    per = pd.read_csv(out["per_level_csv"])
    assert len(per) == len(MODELS) * len(EVAL_LEVELS)
    md = out["per_level_md"].read_text()
    assert "| Model | L1 | L2 | L3 | L4 | L5 | ALL | ALL_STITCHED | LR | HR |" in md
    assert "26.00 / 0.260 / 0.038" in md  # srntt at L1: 26, 0.26, mean(1/25, 1/26, 1/27)


def test_missing_cells_are_marked_with_a_footnote(tmp_path):
    csvs = write_evals(tmp_path, drop={"srntt": {("img2", "L1"), ("img0", "L1")}})
    out = outputs(tmp_path)
    run_tables(csvs, CONFIG, MODELS, ["tiny"], out)
    md = out["main_md"].read_text()
    row = next(line for line in md.splitlines() if line.startswith("| srntt (refsr) |"))
    assert row.count(MISSING_MD) == 4  # PSNR, SSIM, LPIPS, ST-LPIPS of the incomplete cell
    assert "2 of 3 images missing" in md
    assert "| bicubic | 21.00 |" in md  # the complete row is unaffected
    tex = out["main_tex"].read_text()
    assert MISSING_TEX in tex and "2 of 3 images missing" in tex
    main = pd.read_csv(out["main_csv"]).set_index("model")
    assert math.isnan(main.loc["srntt", "psnr"]) and main.loc["srntt", "n_missing"] == 2
    per_md = out["per_level_md"].read_text()
    srntt = next(line for line in per_md.splitlines() if line.startswith("| srntt (refsr) |"))
    assert srntt.split(" | ")[1] == MISSING_MD  # L1 column
    assert "27.00 / 0.270" in srntt  # L2 complete


def test_unavailable_lpips_is_na_with_reason(tmp_path):
    csvs = write_evals(tmp_path, lpips=False, reason="AlexNet weights not available offline")
    out = outputs(tmp_path)
    run_tables(csvs, CONFIG, MODELS, ["tiny"], out)
    md = out["main_md"].read_text()
    assert "AlexNet weights not available offline" in md
    row = next(line for line in md.splitlines() if line.startswith("| bicubic |"))
    assert row.split(" | ")[3] == NA and MISSING_MD not in md  # the LPIPS cell; ST-LPIPS has values
    assert "21.00 / 0.210 / n/a" in out["per_level_md"].read_text()


def test_paper_table_only_on_request_with_published_values(tmp_path, monkeypatch):
    same = paper.Published("X-net", "srntt", 25.0, 0.25, "L1", "refsr", "paper", "made up", "https://x")
    other = paper.Published("Y-net", "srntt", 25.0, 0.25, "L1", "ttsr", "paper", "made up", "https://y")
    unstated = paper.Published("Z-net", "srntt", 25.0, math.nan, "ALL_STITCHED", None, "paper", "z", "https://z")
    monkeypatch.setattr(paper, "PUBLISHED", (same, other, unstated, *paper.PUBLISHED))
    csvs = write_evals(tmp_path, dataset="cufed")
    out = outputs(tmp_path, paper_table=True)
    run_tables(csvs, CONFIG, MODELS, ["cufed"], out, paper_dataset="cufed")
    df = pd.read_csv(out["paper_csv"], keep_default_na=False).set_index("method")
    assert bool(df.loc["X-net", "comparable"]) is True
    assert float(df.loc["X-net", "delta_psnr"]) == pytest.approx(26.0 - 25.0)  # ours at L1 = 26
    assert float(df.loc["X-net", "delta_ssim"]) == pytest.approx(0.26 - 0.25)
    assert df.loc["Y-net", "why_not"] == "protocol differs (published: ttsr; this run: refsr)"
    assert str(df.loc["Y-net", "delta_psnr"]) == "nan"
    assert df.loc["Z-net", "why_not"] == "the source does not state its evaluation protocol"
    assert df.loc["TTSR (TTSR.pt)", "why_not"] == "not run here (ttsr not in this run's models)"
    md = out["paper_md"].read_text()
    assert "https://github.com/researchmm/TTSR/issues/3" in md
    assert "only 3 of the 126 CUFED5 test groups" in md
    assert protocol_from_config(CONFIG).describe() in md
    assert r"\toprule" in out["paper_tex"].read_text()
    assert not any(p.name.startswith("paper") for p in outputs(tmp_path).values())


def test_published_numbers_carry_source_protocol_and_level():
    from refsr.data.layout import EVAL_LEVELS
    from refsr.evaluation.protocol import PRESETS

    by = {p.method: p for p in paper.PUBLISHED}
    rec, full = by["TTSR-rec (TTSR-rec.pt)"], by["TTSR (TTSR.pt)"]
    assert (rec.psnr, rec.ssim, rec.level, rec.protocol) == (26.991, 0.8003, "L1", "ttsr")
    assert (full.psnr, full.ssim, full.level, full.protocol) == (25.402, 0.7600, "L1", "ttsr")
    for p in paper.PUBLISHED:
        assert p.url.startswith("https://github.com/") and p.source
        assert p.protocol is None or p.protocol in PRESETS
        assert p.level is None or p.level in EVAL_LEVELS


def test_provenance_helpers(tmp_path):
    h = config_hash({"b": 1, "a": [1, 2]})
    assert re.fullmatch(r"[0-9a-f]{12}", h) and h == config_hash({"a": [1, 2], "b": 1})
    assert h != config_hash({"b": 2, "a": [1, 2]})
    assert git_commit(tmp_path) == "unknown"
    commit = git_commit(ROOT)
    assert commit == "unknown" or re.fullmatch(r"[0-9a-f]{4,40}(-dirty)?", commit)
    assert latex_escape("a_b & 50% σ") == r"a\_b \& 50\% $\sigma$"


def test_dry_run_has_evaluation_tables_and_figures(tmp_path):
    from conftest import SMOKE, planned_jobs, project_workdir

    jobs = planned_jobs(project_workdir(tmp_path), [SMOKE])
    assert {"evaluate", "tables", "figures"} <= set(jobs), jobs
    outputs = {f for js in jobs.values() for j in js for f in j.output}
    assert "results/tables/per_level.tex" in outputs
    assert not any("paper_vs_reproduced" in f for f in outputs)  # no cufed5 dataset in the smoke config

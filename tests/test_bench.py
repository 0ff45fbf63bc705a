"""Benchmark plumbing: JSON keys and shapes on tiny sizes, the markdown table (no timing checks)."""

from __future__ import annotations

import json

import pytest
import torch

from refsr.bench import dag, markdown, measure, swap
from refsr.cli import main
from refsr.core.errors import RefsrError
from refsr.data.layout import EVAL_LEVELS
from refsr.models import registry

SWAP_KEYS = {"benchmark", "hr_size", "content_positions", "ref_patches", "patch_dim", "mode", "seconds",
             "match_seconds", "stitch_seconds", "swap_seconds", "gflop_per_s", "peak_extra_mb",
             "stitch_peak_extra_mb", "stitch_fraction", "gemm_gflop_per_s", "gemm_fraction", "threads",
             "mean_score", "mean_best_cosine"}
OTHER_KEYS = {"seconds", "match_seconds", "stitch_seconds", "gflop_per_s", "peak_extra_mb", "speedup",
              "score_ratio", "index_agreement"}


@pytest.fixture(scope="module")
def swap_result(vgg_weights):
    return swap.bench_swap(48, 40, repeats=1, compare=True, gemm_n=128, vgg_weights=vgg_weights)


def test_bench_swap_compare_keys(swap_result):
    r = swap_result
    assert SWAP_KEYS <= set(r)
    assert r["hr_size"] == "48x40" and r["content_positions"] == 12 * 10 and r["patch_dim"] == 2304
    assert OTHER_KEYS <= set(r["approximate"]) and OTHER_KEYS <= set(r["naive"])
    assert r["naive"]["index_agreement"] == 1.0  # the naive reference is exact too
    for x in (r, r["approximate"], r["naive"]):
        assert x["seconds"] > 0 and x["gflop_per_s"] > 0 and x["peak_extra_mb"] >= 0
        assert x["seconds"] == pytest.approx(x["match_seconds"] + x["stitch_seconds"])
    json.dumps(r)  # JSON-able


def test_cli_bench_swap_one_json_line(capsys, vgg_weights):
    assert main(["bench", "swap", "--hr-size", "40x40", "--repeats", "1", "--no-memory"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    r = json.loads(lines[0])
    assert {"seconds", "gflop_per_s", "peak_extra_mb", "mode"} <= set(r) and r["mode"] == "exact"
    assert "approximate" not in r


def test_cli_bench_errors(capsys):
    assert main(["bench", "swap", "--hr-size", "8x8"]) == 1
    assert "--hr-size" in capsys.readouterr().err
    assert main(["bench", "swap", "--hr-size", "40x40", "--repeats", "0"]) == 1
    with pytest.raises(RefsrError, match="hr-size"):
        measure.parse_size("500-332")


def test_rss_peak_sees_an_allocation():
    with measure.rss_peak() as peak:
        x = torch.ones(64 * 2**20 // 4)  # 64 MB, touched
        del x
    assert peak["mb"] >= 40


def test_markdown_table_regenerated(tmp_path, swap_result):
    results = {"machine": measure.machine_info(), "swap_160x160": swap_result,
               "train": {"cache_seconds_per_pair": 0.1, "rows": [
                   {"model": "srntt", "size": "default", "arch": {"n_blocks": 4, "n_feats": 32,
                                                                  "n_blocks_transfer": [2, 1, 1]},
                    "batch_size": 8, "patch_px": 96, "iterations": 3, "seconds_per_it": 0.5, "it_per_s": 2.0}]},
               "infer": {"hr_size": "500x332", "lr_size": "125x83", "tile": 0, "note": "n",
                         "rows": [{"model": "srntt", "size": "default", "match_mode": "approximate", "seconds": 1.0}]},
               "dag": {"groups": 126, "models": 5, "levels": 7, "jobs": 900, "seconds": 3.0},
               "approx_quality": {"skipped": "missing checkpoint"}}
    md = tmp_path / "BENCHMARKS.md"
    md.write_text(f"# Benchmarks\n\nProse before.\n\n{markdown.MARK_BEGIN}\nold table\n{markdown.MARK_END}\n\nProse after.\n")
    markdown.update_markdown(md, results)
    text = md.read_text()
    assert "Prose before." in text and "Prose after." in text and "old table" not in text
    assert text.count(markdown.MARK_BEGIN) == 1 and text.count(markdown.MARK_END) == 1
    assert "| 48x40 |" not in text  # only the suite's sizes are tabulated
    results["swap_160x160"] = dict(swap_result, hr_size="160x160")
    markdown.update_markdown(md, results)
    text = md.read_text()
    for needle in ("| 160x160 | exact |", "| 160x160 | approximate |", "| 160x160 | naive full matrix |",
                   "fp32 GEMM", "not yet measured", "| srntt |", "snakemake -n", "Not measured: missing"):
        assert needle in text, needle
    markdown.update_markdown(tmp_path / "new.md", results)  # created when missing
    assert markdown.MARK_BEGIN in (tmp_path / "new.md").read_text()


@pytest.mark.slow
def test_bench_dag_small(tmp_path, root):
    r = dag.bench_dag(groups=2, repeats=1, snakefile=str(root / "workflow" / "Snakefile"))
    assert r["seconds"] > 0 and r["groups"] == 2 and r["models"] == len(registry.names()) and r["levels"] == len(EVAL_LEVELS)


def test_bench_relevance_and_its_table(vgg_weights, tmp_path):
    from refsr.bench.relevance import bench_relevance

    r = bench_relevance(("96x64",), vgg_weights=vgg_weights)
    row = r["rows"][0]
    assert row["search_seconds"] > 0 and row["search_peak_mb"] >= 0
    # 24x16 relu3_1 positions against as many: the released float32 matrix, x5 for five references
    assert row["released_matrix_mb_1_refs"] == pytest.approx(384 * 384 * 4 / 2**20)
    assert row["released_matrix_mb_5_refs"] == pytest.approx(5 * row["released_matrix_mb_1_refs"])
    md = tmp_path / "b.md"
    markdown.update_markdown(md, {"machine": measure.machine_info(), "relevance": r})
    assert "| 96x64 |" in md.read_text() and "TTSR relevance" in md.read_text()


def test_cufed5_shaped_set(tmp_path):
    from refsr.bench.cufed5 import build_set
    from refsr.core.imageio import read_image
    from refsr.inference.levels import STITCH_SIDE
    from refsr.similarity.tiers import read_tiers

    ds, lr_dir, tiers = build_set(tmp_path, 4)
    assert [g.name for g in ds.groups] == ["000", "001", "002", "003"]
    assert read_image(ds.groups[0].hr).shape == (332, 500, 3) and read_image(ds.groups[3].hr).shape == (500, 332, 3)
    for g in ds.groups:
        assert sorted(g.levels.values()) == ["L1", "L2", "L3", "L4", "L5"]
        assert all(max(read_image(p).shape[:2]) <= STITCH_SIDE for p in g.refs.values())
        assert (lr_dir / "test" / f"{g.name}.png").is_file()
    assert read_tiers(tiers)["used"].all()


@pytest.mark.slow
def test_bench_cufed5_rows_and_total(tmp_path, vgg_weights):
    from refsr.bench.cufed5 import bench_cufed5

    rows = bench_cufed5(1, ("srntt_l2", "ttsr_rec"), levels=("L1", "ALL", "LR"), size_scale=0.16, workdir=tmp_path)
    per, total = rows[:-1], rows[-1]
    assert [(r["model"], r["level"]) for r in per] == [(m, lv) for m in ("srntt_l2", "ttsr_rec")
                                                       for lv in ("L1", "ALL", "LR")]
    assert all(r["seconds_per_image"] > 0 and r["before_seconds_per_image"] > 0 for r in per)
    assert total["groups"] == 126 and total["groups_timed"] == 1 and total["models"] == ["srntt_l2", "ttsr_rec"]
    assert total["total_minutes"] > 0 and len(total["load_average_start"]) == 3
    assert total["outputs_vs_before"]["differing_values"] == 0 and total["outputs_vs_before"]["images_compared"] == 6
    assert "skipped" in total["released_ttsr"] and total["dtype"] == "fp32"
    json.dumps(rows)


def test_cli_bench_cufed5_errors(capsys):
    assert main(["bench", "cufed5", "--groups", "127", "--no-before"]) == 1
    assert "--groups" in capsys.readouterr().err
    assert main(["bench", "cufed5", "--model", "nope"]) == 1
    assert "nope" in capsys.readouterr().err
    assert main(["bench", "cufed5", "--dtype", "fp16"]) == 1
    assert "--dtype: invalid choice: 'fp16'" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_gpu_dry_run_checks_every_step(tmp_path, vgg_weights):
    from refsr.bench import gpu

    md = tmp_path / "B.md"
    md.write_text(f"# B\n\n{gpu.MARK_BEGIN}\nold\n{gpu.MARK_END}\n")
    r = gpu.bench_gpu(dry=True, out=tmp_path, markdown=md)
    assert r["dry"] and (tmp_path / "gpu.json").is_file()
    trained = {row["model"] for row in r["train"]}
    assert {"srresnet", "srntt_l2", "ttsr_rec"} <= trained
    assert {row["precision"] for row in r["train"]} == set(gpu.PRECISIONS)
    assert {row["level"] for row in r["infer"]} == {"one reference", "ALL_STITCHED"}
    assert len(r["matching"]) == 4 and r["ddp"]["backend"] == "gloo" and r["ddp"]["world_size"] == 1
    text = md.read_text()
    assert "old" not in text and "it/s" in text


def test_bench_gpu_without_cuda_is_one_line():
    from refsr.bench import gpu

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(RefsrError, match="no CUDA device"):
        gpu.bench_gpu(dry=False)


def test_bf16_quality_skips_without_a_run(tmp_path):
    from refsr.bench.quality import bench_bf16_quality

    assert "missing" in bench_bf16_quality(str(tmp_path))["skipped"]
    md = tmp_path / "b.md"
    markdown.update_markdown(md, {"machine": measure.machine_info(), "bf16_quality": {"skipped": "missing x"}})
    assert "bf16 network pass" in md.read_text() and "Not measured: missing x." in md.read_text()


@pytest.mark.slow
def test_bf16_quality_of_a_runs_trained_models(smoke_run, tmp_path):
    from refsr.bench.quality import bench_bf16_quality

    q = bench_bf16_quality(str(smoke_run / "results"), models=("srresnet", "srntt", "ttsr_rec"))
    assert set(q["models"]) == {"srresnet", "srntt", "ttsr_rec"}
    for r in q["models"].values():
        assert r["images"] > 0 and set(r["mean_delta_db_per_level"]) <= {"L1", "L2", "L3", "L4", "L5"}
        assert r["max_abs_delta_db"] < 0.1  # the trained models of a run barely move in bf16
    assert any(r["max_abs_delta_db"] > 0 for r in q["models"].values())  # but bf16 is applied
    md = tmp_path / "b.md"
    markdown.update_markdown(md, {"machine": measure.machine_info(), "bf16_quality": q})
    assert "| srntt | " in md.read_text()

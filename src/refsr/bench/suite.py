"""The benchmark suite behind ``make bench`` (``refsr bench all``).

``refsr bench swap`` times SRNTT's feature swapping (matching at relu3_1 + stitching at
relu3_1/relu2_1/relu1_1) on a real photo pair at a CUFED5-like size and prints one JSON
line; ``--compare`` adds, measured side by side in the same process (interleaved repeats,
medians), the approximate mode, the naive full-matrix reference (where it fits in memory)
and the machine's fp32 GEMM throughput (``torch.matmul`` of two 4096² matrices).

``refsr bench all`` (``make bench``) runs the suite — swapping at several sizes, training
iterations per second per model at the default and the paper network sizes, inference
seconds per image, TTSR's relevance search and transfer against the released full matrix
(seconds, peak memory), the ``snakemake -n`` DAG build time of a CUFED5-sized configuration
and, when trained models and the embedded test set are there, the PSNR change of the
approximate mode (SRNTT) and of the bf16 network pass (every trained model) — writes ``results/bench/*.json`` and regenerates the table in
``BENCHMARKS.md``.

Definitions. ``gflop_per_s``: nominal patch-level work ``2 N_content N_ref (9 C)`` over the
matching seconds (so algorithms that do less work than that score higher than a GEMM).
``peak_extra_mb``: the highest resident memory above the level just before the call,
sampled every millisecond in a fresh process that holds only the inputs (so earlier
measurements cannot hide or inflate it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from refsr.bench.dag import bench_dag
from refsr.bench.infer import bench_infer
from refsr.bench.markdown import SIZES, update_markdown
from refsr.bench.measure import machine_info, parse_size
from refsr.bench.quality import bench_approx_quality, bench_bf16_quality
from refsr.bench.relevance import bench_relevance
from refsr.bench.swap import bench_swap
from refsr.bench.train import bench_train
from refsr.core.atomic import atomic_path
from refsr.core.errors import RefsrError


def bench_all(out_dir: str = "results/bench", markdown: str | None = "BENCHMARKS.md", quick: bool = False,
              vgg_weights: str | None = None, log=print) -> dict:
    """Run the suite, write ``out_dir/*.json`` and regenerate ``markdown``'s table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine_info()}
    sizes = ("160x160",) if quick else SIZES
    big = {"1000x1000"}  # an exact run takes about half a minute here: one timed run, no warm-up
    steps = [(f"swap_{size}", lambda size=size: bench_swap(
        *parse_size(size), repeats=1 if size in big else (2 if quick else 5), compare=True, vgg_weights=vgg_weights,
        naive_repeats=1 if size != "160x160" else 3, warmup=size not in big)) for size in sizes]
    steps += [("train", lambda: bench_train(iterations=1 if quick else 3, vgg_weights=vgg_weights,
                                            sizes=("default",) if quick else ("default", "paper"))),
              ("infer", lambda: bench_infer("160x160" if quick else "500x332", repeats=1 if quick else 2,
                                            vgg_weights=vgg_weights,
                                            sizes=("default",) if quick else ("default", "paper"))),
              ("relevance", lambda: bench_relevance(("160x160",) if quick else ("500x332", "1000x1000"),
                                                    vgg_weights=vgg_weights)),
              ("dag", lambda: bench_dag(groups=8 if quick else 126, repeats=1 if quick else 2)),
              ("approx_quality", lambda: bench_approx_quality(vgg_weights=vgg_weights)),
              ("bf16_quality", lambda: bench_bf16_quality(vgg_weights=vgg_weights))]
    _write_json(out / "machine.json", results["machine"])
    for name, fn in steps:
        t0 = time.perf_counter()
        log(f"bench {name} ...")
        try:
            res = fn()
        except RefsrError as err:
            res = {"benchmark": name, "error": str(err)}
        res["wall_seconds"] = time.perf_counter() - t0
        results[name] = res
        _write_json(out / f"{name}.json", res)
        log(f"bench {name}: {res['wall_seconds']:.1f} s")
    if markdown:
        update_markdown(markdown, results)
    return results


def _write_json(path: Path, obj: dict) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=1, default=str) + "\n")

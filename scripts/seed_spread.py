"""The three-seed spread of the default run (``make seeds``; not part of ``make run``).

Runs the pipeline once per seed in its own folder, ``results/seeds/seed<N>/`` (the config file
with ``seed: N`` and the levels cut to ``L1``, the level the spread is reported at; everything
else as given), then writes ``results/seeds/spread.{csv,md}``: per trained model, the L1 PSNR
and ST-LPIPS (mean over the test images) of every seed, their mean, and their spread
(max - min) and standard deviation over the seeds. Not a rule: it calls Snakemake itself.

    .venv/bin/python scripts/seed_spread.py [--config config.yaml] [--seeds 0 1 2] [--cores all]
                                             [--main .]

``--main DIR``: a finished run of the same config file in ``DIR`` (``make run``'s, say) counts as
the config's own seed instead of running it again (its L1 rows are the same: the levels do not
change training).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
LEVEL = "L1"


def run_seed(config: dict, seed: int, out: Path, cores: str) -> Path:
    """Run the pipeline of ``config`` with ``seed`` in ``out/seed<seed>``; its folder."""
    work = out / f"seed{seed}"
    work.mkdir(parents=True, exist_ok=True)
    cfg = copy.deepcopy(config)
    cfg["seed"] = seed
    cfg.setdefault("evaluation", {})["levels"] = [LEVEL]
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    snakemake = Path(sys.executable).with_name("snakemake")
    subprocess.run([str(snakemake), "-s", str(ROOT / "workflow" / "Snakefile"), "-d", str(work),
                    "--cores", cores, "--rerun-incomplete"], check=True)
    return work


def scores(work: Path, dataset: str, models: list[str]) -> dict[str, tuple[float, float]]:
    """``model -> (PSNR, ST-LPIPS)`` at L1, means over the images, of one finished run."""
    out = {}
    for model in models:
        df = pd.read_csv(work / "results" / "eval" / dataset / f"{model}.csv")
        df = df[df["level"] == LEVEL]
        out[model] = (float(df["psnr"].mean()), float(df["stlpips"].mean()))
    return out


def spread_table(per_seed: dict[int, dict[str, tuple[float, float]]]) -> pd.DataFrame:
    seeds = sorted(per_seed)
    rows = []
    for model in per_seed[seeds[0]]:
        row = {"model": model}
        for i, metric in enumerate(("psnr", "stlpips")):
            values = [per_seed[s][model][i] for s in seeds]
            row.update({f"{metric}_seed{s}": v for s, v in zip(seeds, values, strict=True)})
            row[f"{metric}_mean"] = statistics.fmean(values)
            row[f"{metric}_spread"] = max(values) - min(values)
            row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame, seeds: list[int]) -> str:
    head = (f"| model | L1 PSNR (dB), seeds {', '.join(map(str, seeds))} | mean | spread (max-min) | std "
            f"| L1 ST-LPIPS, seeds {', '.join(map(str, seeds))} | mean | spread | std |")
    lines = [head, "|" + "---|" * 9]
    for r in df.to_dict("records"):
        p = " / ".join(f"{r[f'psnr_seed{s}']:.2f}" for s in seeds)
        q = " / ".join(f"{r[f'stlpips_seed{s}']:.3f}" for s in seeds)
        lines.append(f"| {r['model']} | {p} | {r['psnr_mean']:.2f} | {r['psnr_spread']:.2f} | {r['psnr_std']:.2f} "
                     f"| {q} | {r['stlpips_mean']:.3f} | {r['stlpips_spread']:.3f} | {r['stlpips_std']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "config.yaml"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cores", default="all")
    ap.add_argument("--out", default=str(ROOT / "results" / "seeds"))
    ap.add_argument("--models", nargs="+", default=None,
                    help="only these models (and what they train from) instead of the config's")
    ap.add_argument("--main", default=None, help="a finished run of the config: its seed is not run again")
    args = ap.parse_args(argv)
    config = yaml.safe_load(Path(args.config).read_text())
    if args.models:
        config["models"] = list(args.models)
    sys.path.insert(0, str(ROOT / "src"))
    from refsr.core.config import validate
    from refsr.models import registry

    valid = validate(config)
    trained = [m for m in valid["models"] if registry.trained_here(m, valid)]
    dataset = valid["eval_datasets"][0]
    out = Path(args.out)
    per_seed = {}
    for seed in args.seeds:
        main_run = args.main is not None and seed == valid["seed"]
        work = Path(args.main) if main_run else run_seed(config, seed, out, args.cores)
        per_seed[seed] = scores(work, dataset, trained)
    df = spread_table(per_seed)
    df.to_csv(out / "spread.csv", index=False, float_format="%.4f")
    (out / "spread.md").write_text(markdown(df, sorted(per_seed)))
    print((out / "spread.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

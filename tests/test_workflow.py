"""The Snakemake workflow: dry runs of every shipped config, lint, bad configs, the data stage."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from refsr.data.layout import EVAL_LEVELS

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
CONFIGS = ["config.yaml", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").glob("*.yaml"))]


def snakemake(*args, cwd=ROOT, check=True):
    proc = subprocess.run([SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def workdir(tmp_path: Path) -> Path:
    """A working directory holding the project's configs, as a user's checkout would, and the
    (empty) dataset folders they name: the DAG build checks that those exist."""
    import yaml

    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    for cfg in [tmp_path / "config.yaml", *(tmp_path / "configs").glob("*.yaml")]:
        for ds in (yaml.safe_load(cfg.read_text()) or {}).get("datasets", {}).values():
            for key in ("test_dir", "train_dir", "hr_dir", "refs_dir"):
                if ds.get(key):
                    (tmp_path / ds[key]).mkdir(parents=True, exist_ok=True)
    return tmp_path


@pytest.mark.parametrize("configfile", CONFIGS)
def test_dry_run_every_config(configfile, tmp_path):
    wd = workdir(tmp_path)
    proc = snakemake("-n", "--cores", "2", "-s", str(ROOT / "workflow/Snakefile"),
                     "-d", str(wd), "--configfile", str(wd / configfile))
    assert "build_dataset" in proc.stdout


def test_lint():
    proc = snakemake("--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("override, key", [
    ("device=gpu", "config key device"),
    ("resize=lanczos", "config key resize"),
    ("train_dataset=nope", "config key train_dataset"),
    ("scale=3", "config key scale"),
])
def test_bad_config_fails_before_any_job(override, key, tmp_path):
    wd = workdir(tmp_path)
    proc = snakemake("-n", "--cores", "1", "-s", str(ROOT / "workflow/Snakefile"), "-d", str(wd),
                     "--config", override, check=False)
    assert proc.returncode != 0
    assert key in proc.stderr + proc.stdout
    assert not (wd / "results").exists()


def test_bad_nested_dataset_key(tmp_path):
    wd = workdir(tmp_path)
    (wd / "bad.yaml").write_text("datasets:\n  mine: {kind: cufed5, groups: 500}\n")
    proc = snakemake("-n", "--cores", "1", "-s", str(ROOT / "workflow/Snakefile"), "-d", str(wd),
                     "--configfile", str(wd / "bad.yaml"), check=False)
    assert proc.returncode != 0
    assert "config key datasets.mine" in proc.stderr + proc.stdout


@pytest.mark.slow
def test_data_stage_end_to_end(tmp_path, vgg_weights):
    wd = workdir(tmp_path)
    snakemake("results/tiers/embedded.csv", "results/figures/tiers_embedded.png",
              "results/tiers/embedded_agreement.md", "--cores", "2",
              "-s", str(ROOT / "workflow/Snakefile"), "-d", str(wd),
              "--configfile", str(wd / "configs/smoke.yaml"))
    tiers = pd.read_csv(wd / "results/tiers/embedded.csv", keep_default_na=False)
    assert list(tiers.columns) == ["group", "ref", "level", "local_inliers", "vgg_cosine",
                                   "combined", "tier", "used"]
    assert len(tiers) == 3 * 5
    assert (tiers["tier"] == tiers["level"]).all() and tiers["used"].all()
    agree = pd.read_csv(wd / "results/tiers/embedded_agreement.csv")
    assert (agree["spearman_rho"] < 0).all(), agree
    assert (wd / "results/data/embedded/lr/test/motorcycle.png").is_file()
    assert (wd / "results/logs/tiers/embedded.log").read_text().count("Spearman") == 2


@pytest.mark.slow
def test_whole_pipeline_on_smoke_config(tmp_path, vgg_weights):
    """`snakemake` on the smoke config builds every target: data, five models, inference."""
    wd = workdir(tmp_path)
    snakemake("--cores", "2", "-s", str(ROOT / "workflow/Snakefile"), "-d", str(wd),
              "--configfile", str(wd / "configs/smoke.yaml"))
    iterations = {"srresnet": 3, "srgan": 2, "srntt_l2": 3, "srntt": 2, "ttsr_rec": 2, "ttsr": 2}
    for model, n in iterations.items():
        assert (wd / f"results/models/{model}/checkpoint.pt").is_file()
        log = pd.read_csv(wd / f"results/models/{model}/train_log.csv")
        assert len(log) == n
        assert (wd / f"results/checkpoints/{model}/state.pt").is_file()
    for model in ["bicubic", *iterations]:
        for level in EVAL_LEVELS:
            assert (wd / f"results/sr/embedded/{model}/chelsea/{level}.png").is_file()
    corr = sorted((wd / "results/correspondence/embedded").glob("*.npz"))
    assert len(corr) == 8
    ev = pd.read_csv(wd / "results/eval/embedded/srntt.csv")
    assert list(ev.columns) == ["image", "level", "psnr", "ssim", "lpips", "stlpips"]
    assert len(ev) == 3 * len(EVAL_LEVELS) and ev["psnr"].notna().all()
    assert np.isfinite(ev["stlpips"]).all()  # the offline perceptual metric, in every row
    for name in ("main", "per_level"):
        for ext in ("csv", "md", "tex"):
            assert (wd / f"results/tables/{name}.{ext}").is_file()
    for fig in ("tiers", "metric_vs_level", "comparison", "correspondence"):
        assert (wd / f"results/figures/{fig}_embedded.png").stat().st_size > 0
    snakemake("--report", "results/report.html", "-s", str(ROOT / "workflow/Snakefile"), "-d", str(wd),
              "--configfile", str(wd / "configs/smoke.yaml"))
    assert (wd / "results/report.html").stat().st_size > 10000
    # a second run has nothing to do
    proc = snakemake("-n", "--cores", "2", "-s", str(ROOT / "workflow/Snakefile"), "-d", str(wd),
                     "--configfile", str(wd / "configs/smoke.yaml"))
    assert "Nothing to be done" in proc.stdout + proc.stderr
    # a reference key that changes no SR output (max_flow without the flow) re-runs no
    # inference (only the tables, whose captions carry the config's hash); aligning re-runs
    # the reference-based models' inference only
    (wd / "ref.yaml").write_text("reference: {max_flow: 4.0}\n")
    out = snakemake("-n", "--cores", "2", "-s", str(ROOT / "workflow/Snakefile"), "-d", str(wd),
                    "--configfile", str(wd / "configs/smoke.yaml"), str(wd / "ref.yaml")).stdout
    assert "rule tables:" in out and "rule infer:" not in out and "rule evaluate:" not in out
    (wd / "ref.yaml").write_text("reference: {align: homography}\n")
    out = snakemake("-n", "--cores", "2", "-s", str(ROOT / "workflow/Snakefile"), "-d", str(wd),
                    "--configfile", str(wd / "configs/smoke.yaml"), str(wd / "ref.yaml")).stdout
    rerun = sorted(b.split("model=")[1].split()[0].rstrip(",") for b in out.split("rule infer:")[1:])
    assert rerun == ["srntt", "srntt_l2", "ttsr", "ttsr_rec"], rerun


@pytest.mark.slow
def test_folder_dataset_end_to_end_has_every_per_level_cell(tmp_path, vgg_weights):
    """Issue 16: a folder dataset of three real photos with five candidates each (the
    motorcycle's real right stereo view among them), tiny budgets: levels per image, and the
    per-level table has a number in every cell for every reference-based model."""
    import yaml
    from conftest import make_photo_folder

    from refsr.core.config import validate
    from refsr.models import registry

    wd = workdir(tmp_path)
    chosen = make_photo_folder(wd / "data/mine", dict.fromkeys(("motorcycle", "astronaut", "coffee"), 5))
    cfg = yaml.safe_load((wd / "configs/smoke.yaml").read_text())
    cfg["datasets"]["mine"] = {"kind": "folder", "hr_dir": "data/mine/hr", "refs_dir": "data/mine/refs"}
    cfg["eval_datasets"] = ["mine"]
    (wd / "mine.yaml").write_text(yaml.safe_dump(cfg))
    snakemake("--cores", "2", "-s", str(ROOT / "workflow/Snakefile"), "-d", str(wd),
              "--configfile", str(wd / "mine.yaml"))
    tiers = pd.read_csv(wd / "results/tiers/mine.csv", keep_default_na=False)
    for group, refs in chosen.items():
        part = tiers[tiers["group"] == group]
        assert sorted(part["ref"]) == sorted(refs)
        assert sorted(part["tier"]) == ["L1", "L2", "L3", "L4", "L5"] and part["used"].all()
    per = pd.read_csv(wd / "results/tables/per_level.csv")
    assert (per["n_level"] == 3).all() and (per["n_missing"] == 0).all()
    assert per[["psnr", "ssim"]].notna().all(axis=None)
    md = (wd / "results/tables/per_level.md").read_text()
    models = [m for m in validate(cfg)["models"] if registry.get(m).uses_reference]
    assert models
    for model in models:
        row = next(line for line in md.splitlines() if line.startswith(f"| {model}"))
        cells = [c.strip() for c in row.strip("|").split("|")][1:]
        assert len(cells) == len(EVAL_LEVELS) and all(c[0].isdigit() and "(n =" not in c for c in cells), row
    assert "images missing" not in md  # no failure footnote
    assert "assigned per image" in (wd / "results/tiers/mine_agreement.md").read_text()

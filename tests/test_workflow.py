"""The Snakemake workflow: dry runs of every shipped config, bad configs, the smoke pipeline run
to the end (the session's smoke run, conftest.smoke_run) and a folder dataset on top of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, SMOKE, copy_of_run, planned_jobs, project_workdir, snakemake, wildcards

from refsr.data.layout import EVAL_LEVELS

CONFIGS = ["config.yaml", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").glob("*.yaml"))]


def workdir(tmp_path: Path) -> Path:
    """A working directory holding the project's configs, as a user's checkout would, and the
    (empty) dataset folders they name (conftest.project_workdir)."""
    return project_workdir(tmp_path)


@pytest.mark.parametrize("configfile", CONFIGS)
def test_dry_run_every_config(configfile, tmp_path):
    wd = workdir(tmp_path)
    assert "build_dataset" in planned_jobs(wd, [configfile])


@pytest.mark.parametrize("override, key", [
    ("device=gpu", "config key device"),
    ("resize=lanczos", "config key resize"),
    ("train_dataset=nope", "config key train_dataset"),
    ("scale=3", "config key scale"),
])
def test_bad_config_fails_before_any_job(override, key, tmp_path):
    wd = workdir(tmp_path)
    proc = snakemake(wd, "-n", "--cores", "1", "--config", override, check=False)
    assert proc.returncode != 0
    assert key in proc.stderr + proc.stdout
    assert not (wd / "results").exists()


def test_bad_nested_dataset_key(tmp_path):
    wd = workdir(tmp_path)
    (wd / "bad.yaml").write_text("datasets:\n  mine: {kind: cufed5, groups: 500}\n")
    proc = snakemake(wd, "-n", "--cores", "1", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert "config key datasets.mine" in proc.stderr + proc.stdout


DATA_TARGETS = ("results/tiers/embedded.csv", "results/figures/tiers_embedded.png",
                "results/tiers/embedded_agreement.md")


def test_data_stage_targets_run_the_data_stage_only(tmp_path):
    """Asking for the similarity tiers builds the dataset, its LR images and the tiers:
    nothing is trained. (What those jobs write: test_smoke_run_data_stage.)"""
    jobs = planned_jobs(workdir(tmp_path), [SMOKE], DATA_TARGETS)
    assert {rule: len(js) for rule, js in jobs.items()} == {"build_dataset": 1, "degrade": 1, "tiers": 1}


@pytest.mark.slow
def test_smoke_run_data_stage(smoke_run):
    """The data stage's outputs in the smoke run: the tiers CSV, its figure, the agreement
    table (the embedded dataset's known levels against the computed tiers) and the log."""
    wd = smoke_run
    for target in DATA_TARGETS:
        assert (wd / target).stat().st_size > 0, target
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
def test_whole_pipeline_on_smoke_config(smoke_run, tmp_path):
    """`snakemake` on the smoke config builds every target: data, six models, inference,
    evaluation, tables, figures; the report; then nothing is left to do, also in a copy of the
    run (the copy tests rely on that), and a reference key re-runs only what it changes."""
    wd = smoke_run
    iterations = {"srresnet": 3, "srgan": 2, "srntt_l2": 3, "srntt": 2, "ttsr_rec": 2, "ttsr": 2}
    for model, n in iterations.items():
        assert (wd / f"results/models/{model}/checkpoint.pt").is_file()
        log = pd.read_csv(wd / f"results/models/{model}/train_log.csv")
        assert len(log) == n
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
    # the report (written outside the shared run)
    snakemake(wd, "--report", tmp_path / "report.html", "--configfile", SMOKE)
    assert (tmp_path / "report.html").stat().st_size > 10000
    # a second run has nothing to do, in the run and in a copy of it
    assert planned_jobs(wd, [SMOKE]) == {}
    copy = copy_of_run(wd, tmp_path / "copy")
    proc = snakemake(copy, "-n", "--cores", "1", "--configfile", SMOKE)
    assert "Nothing to be done" in proc.stdout + proc.stderr
    # a reference key that changes no SR output (max_flow without the flow) re-runs no
    # inference (only the tables, whose captions carry the config's hash); aligning re-runs
    # the reference-based models' inference only
    (tmp_path / "ref.yaml").write_text("reference: {max_flow: 4.0}\n")
    assert set(planned_jobs(wd, [SMOKE, tmp_path / "ref.yaml"])) == {"tables", "all"}
    (tmp_path / "ref.yaml").write_text("reference: {align: homography}\n")
    jobs = planned_jobs(wd, [SMOKE, tmp_path / "ref.yaml"])
    assert wildcards(jobs["infer"], "model") == ["srntt", "srntt_l2", "ttsr", "ttsr_rec"], jobs
    assert "train" not in jobs and "correspondence" not in jobs, jobs


@pytest.mark.slow
def test_folder_dataset_end_to_end_has_every_per_level_cell(smoke_run, tmp_path):
    """Issue 16: a folder dataset of three real photos with five candidates each (the
    motorcycle's real right stereo view among them), tiny budgets: levels per image, and the
    per-level table has a number in every cell for every reference-based model. Evaluated on a
    copy of the smoke run: its models (trained on the embedded dataset) are not retrained. One
    model per network (bicubic, srresnet, srntt, ttsr): srgan, srntt_l2 and ttsr_rec run the
    same networks and inference as srresnet, srntt and ttsr (they differ in training only)."""
    import yaml
    from conftest import make_photo_folder

    from refsr.core.config import validate
    from refsr.models import registry

    wd = copy_of_run(smoke_run, tmp_path / "run")
    chosen = make_photo_folder(wd / "data/mine", dict.fromkeys(("motorcycle", "astronaut", "coffee"), 5))
    cfg = yaml.safe_load((wd / SMOKE).read_text())
    cfg["datasets"]["mine"] = {"kind": "folder", "hr_dir": "data/mine/hr", "refs_dir": "data/mine/refs"}
    cfg["eval_datasets"] = ["mine"]
    cfg["models"] = ["bicubic", "srresnet", "srntt", "ttsr"]

    def networks(models):
        return {registry.get(m).architecture for m in models}

    assert networks(cfg["models"]) == networks(validate(yaml.safe_load((wd / SMOKE).read_text()))["models"])
    (wd / "mine.yaml").write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(wd, ["mine.yaml"])
    assert not {"train", "correspondence"} & set(jobs), jobs
    assert wildcards(jobs["infer"], "model") == sorted(cfg["models"]), jobs
    snakemake(wd, "--cores", "2", "--configfile", "mine.yaml")
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

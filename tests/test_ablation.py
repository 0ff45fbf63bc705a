"""The ablation table (deltas, paired sign counts) and the known-correspondence match study."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from refsr.report.ablation import (
    Variant,
    ablation_frame,
    ablation_table,
    delta_figure,
    match_accuracy_table,
)


def _eval(psnr, stlpips, levels=("L1", "L5")):
    rows = [{"image": f"im{i}", "level": lv, "psnr": p + k, "ssim": 0.5, "lpips": np.nan, "stlpips": s}
            for k, lv in enumerate(levels) for i, (p, s) in enumerate(zip(psnr, stlpips, strict=True))]
    return pd.DataFrame(rows)


def test_deltas_and_paired_sign_counts():
    base = {("emb", "srntt"): _eval([20.0, 21.0, 22.0], [0.3, 0.3, 0.3])}
    runs = {("emb", "v"): _eval([20.5, 20.0, 22.0], [0.2, 0.4, 0.3])}
    v = [Variant("v", "srntt", "reference.align: none → homography")]
    f = ablation_frame(base, runs, v, ["L1", "L5", "HR"], {("emb", "v"): {"aligned": 4, "fallback": 2}})
    assert list(f["level"]) == ["L1", "L5"]  # HR: no rows in either, left out
    r = f.iloc[0]
    assert r["d_psnr"] == pytest.approx((0.5 - 1.0 + 0.0) / 3)
    assert (r["psnr_better"], r["psnr_worse"]) == (1, 1)  # one tie
    # ST-LPIPS: lower is better, so 0.2 < 0.3 counts as better
    assert (r["stlpips_better"], r["stlpips_worse"]) == (1, 1)
    assert (r["ssim_better"], r["ssim_worse"]) == (0, 0)
    t = ablation_table(f, v, "Protocol `refsr`.")
    assert "v = srntt with reference.align: none → homography" in t.md
    assert "+1/-1" in t.md and "4/2" in t.md and r"\begin{table}" in t.tex
    assert delta_figure(f, ["L1", "L5"]).axes


def test_a_variant_with_a_baseline_is_compared_with_that_variant():
    base = {("emb", "srntt"): _eval([20.0, 20.0], [0.3, 0.3])}
    runs = {("emb", "test_real"): _eval([15.0, 16.0], [0.6, 0.6]),
            ("emb", "train_real"): _eval([17.0, 16.0], [0.5, 0.7])}
    v = [Variant("test_real", "srntt", "test LR: bicubic → realistic"),
         Variant("train_real", "srntt", "training LR: bicubic → realistic", baseline="test_real")]
    f = ablation_frame(base, runs, v, ["L1"]).set_index("variant")
    assert f.loc["test_real", "d_psnr"] == pytest.approx(-4.5)
    assert f.loc["test_real", "baseline"] == "main run"
    r = f.loc["train_real"]  # against test_real, not the main run
    assert r["baseline"] == "test_real" and r["d_psnr"] == pytest.approx(1.0)
    assert (r["psnr_better"], r["psnr_worse"], r["stlpips_better"], r["stlpips_worse"]) == (1, 0, 1, 1)
    t = ablation_table(f.reset_index(), v, "Protocol `refsr`.")
    assert "| emb | train_real | test_real | L1 |" in t.md
    labels = [ln.get_label() for ln in delta_figure(f.reset_index(), ["L1"]).axes[0].lines]
    assert "train_real vs test_real (emb)" in labels


def _config(**over):
    from refsr.core.config import validate

    return validate(over)


def test_variant_settings_baselines_and_change_text():
    from refsr.evaluation.variants import change_text, check_variants, settings

    cfg = _config()
    default = {v["name"]: v for v in cfg["ablations"]}
    check_variants(cfg)  # the shipped default list is valid
    v = default["srntt_train_realistic_test_realistic"]
    assert settings(cfg, v) == {"align": "none", "degrade": "bicubic", "test": "realistic", "train": "realistic"}
    # against srntt_test_realistic, only the training LR differs
    text = change_text(cfg, v)
    assert text.startswith("training LR (degradation.train") and "bicubic → realistic" in text
    assert "test LR" not in text and text.endswith("(against variant srntt_test_realistic)")
    assert change_text(cfg, default["srntt_align_homography"]) == (
        "reference.align: none → homography (against the main run)")


@pytest.mark.parametrize(("variants", "message"), [
    ([{"name": "a", "model": "srntt", "test_degradation": "bicubic"}], "'a' runs as its baseline does"),
    ([{"name": "a", "model": "bicubic", "train_degradation": "realistic"}], "bicubic is not trained here"),
    ([{"name": "a", "model": "srresnet", "align": "homography"}], "srresnet takes no reference"),
    ([{"name": "a", "model": "srntt", "align": "homography", "baseline": "b"}], "baseline 'b' is not another"),
    ([{"name": "a", "model": "srntt", "align": "homography", "baseline": "a"}], "baseline 'a' is not another"),
    ([{"name": "a", "model": "srntt", "train_degradation": "realistic", "baseline": "b"},
      {"name": "b", "model": "srresnet", "test_degradation": "realistic"}], "baseline 'b' runs another model"),
    ([{"name": "a", "model": "srntt", "align": "homography", "baseline": "b"},
      {"name": "b", "model": "srntt", "align": "homography"}], "'a' runs as its baseline does"),
    ([{"name": "a", "model": "srntt", "align": "homography"},
      {"name": "a", "model": "srntt", "degrade": "sr_model"}], "variant names repeat: a"),
    ([{"name": "a", "model": "ttsr_rec", "align": "homography"}], "'ttsr_rec' is not in models"),
])
def test_bad_variants_are_one_line_errors(variants, message):
    from refsr.core.errors import RefsrError
    from refsr.evaluation.variants import check_variants

    cfg = _config(ablations=variants, models=["bicubic", "srresnet", "srntt"])
    with pytest.raises(RefsrError, match="ablations") as err:
        check_variants(cfg)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_imported_weights_are_not_retrained_by_a_variant():
    from refsr.core.errors import RefsrError
    from refsr.evaluation.variants import check_variants

    cfg = _config(ablations=[{"name": "a", "model": "srresnet", "train_degradation": "realistic"}],
                  pretrained={"srresnet": {"path": "w.pt", "source": "refsr"}})
    with pytest.raises(RefsrError, match="srresnet is not trained here"):
        check_variants(cfg)


def test_match_accuracy_table_means_over_photos():
    df = pd.DataFrame([[p, "L1", 0.0, a, d, acc, 10, "aligned"]
                       for p, acc in (("x", 0.5), ("y", 0.7)) for a in ("none", "homography")
                       for d in ("bicubic", "sr_model")],
                      columns=["photo", "level", "angle", "align", "degrade", "accuracy", "n", "align_status"])
    t = match_accuracy_table(df, "srresnet")
    assert "| L1 | 0 | 0.600 | 0.600 | 0.600 | 0.600 |" in t.md
    assert "srresnet" in t.md


@pytest.mark.slow
def test_match_study_is_deterministic_and_alignment_helps_at_30_degrees(vgg, tmp_path):
    from test_infer import _ckpt

    from refsr.inference.align import ReferenceAligner
    from refsr.inference.match_study import study_rows
    from refsr.inference.resolver import SuperResolver

    sisr = SuperResolver(_ckpt(tmp_path, "srresnet"), model="srresnet", tile=0)
    args = (["astronaut"], 160, [30.0], ReferenceAligner("homography"), sisr, vgg)
    a, b = study_rows(*args), study_rows(*args)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 4 * 2 * 2 and (a["n"] > 50).all()
    m = a[a["degrade"] == "bicubic"].groupby("align")["accuracy"].mean()
    assert m["homography"] > m["none"] + 0.1


def test_ablations_target_dry_run_and_bad_variant(tmp_path):
    from conftest import planned_jobs, project_workdir, snakemake, wildcards

    wd = project_workdir(tmp_path)
    jobs = planned_jobs(wd, [], ["ablations"])
    assert {"ablation_variant", "match_study", "ablation", "degrade_variant"} <= set(jobs), jobs
    assert sorted((j.wildcards["test"], j.wildcards["train"]) for j in jobs["degrade_variant"]) == [
        ("bicubic", "realistic"), ("realistic", "bicubic")]
    variant = {j.wildcards["variant"]: j.input for j in jobs["ablation_variant"]}
    assert {"srntt_align_homography", "srntt_l2_align_homography"} <= set(variant)
    # training on realistic LR: the chain srresnet -> srntt_l2 -> srntt again, on the realistic
    # training split, with its own correspondence cache; the main run's models are not retrained
    chain = "results/ablation/train_realistic"
    assert {j.wildcards["train"] for j in jobs["train_variant"]} == {"realistic"}
    train = {j.wildcards["model"]: j.input for j in jobs["train_variant"]}
    assert sorted(train) == ["srntt", "srntt_l2", "srresnet"]
    assert f"{chain}/models/srntt_l2/checkpoint.pt" in train["srntt"]
    assert f"{chain}/correspondence/embedded" in train["srntt"]
    assert "results/data/embedded/lr_test_bicubic_train_realistic" in train["srresnet"]
    corr = {(j.wildcards["train"], j.wildcards["dataset"]): j.input for j in jobs["correspondence_variant"]}
    assert "results/data/embedded/lr_test_bicubic_train_realistic" in corr[("realistic", "embedded")]
    assert wildcards(jobs["train"], "model") == ["srntt", "srntt_l2", "srresnet"]
    assert not any("realistic" in f for j in jobs["train"] for f in j.input + j.output)
    assert f"{chain}/models/srntt/checkpoint.pt" in variant["srntt_train_realistic"]
    assert "results/data/embedded/lr" in variant["srntt_train_realistic"]  # the main run's test LR
    assert "results/data/embedded/lr_test_realistic_train_bicubic" in variant["srntt_train_realistic_test_realistic"]
    assert f"{chain}/models/srresnet/checkpoint.pt" in variant["srresnet_train_realistic_test_realistic"]
    assert "results/models/srntt/checkpoint.pt" in variant["srntt_test_realistic"]
    # the SR-domain variant waits for the SISR model it matches with
    assert "results/models/srresnet/checkpoint.pt" in variant["srntt_degrade_sr_model"]
    # A variant of a model that is not run (or takes no reference) is refused, naming the key;
    # the main run's DAG does not depend on the ablations.
    (wd / "few.yaml").write_text("models: [bicubic, srresnet]\n")
    proc = snakemake(wd, "ablations", "-n", "--cores", "1", "--configfile", "few.yaml", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "ablations: variant 'srntt_align_homography'" in out, out[-3000:]
    assert "'srntt' is not in models" in out, out[-3000:]
    assert wildcards(planned_jobs(wd, ["few.yaml"])["infer"], "model") == ["bicubic", "srresnet"]


def test_main_run_degrade_sr_model_infers_after_the_sisr_model(tmp_path):
    """reference.degrade: sr_model in the main run: every reference-based model's inference
    takes the SISR checkpoint (reference.sisr_model) as an input; the SISR models' do not."""
    from conftest import planned_jobs, project_workdir

    wd = project_workdir(tmp_path)
    (wd / "sr.yaml").write_text("reference: {degrade: sr_model, sisr_model: srresnet}\n")
    jobs = {j.wildcards["model"]: j.input for j in planned_jobs(wd, ["sr.yaml"])["infer"]}
    assert "results/models/srresnet/checkpoint.pt" in jobs["srntt"]
    assert "results/models/srresnet/checkpoint.pt" in jobs["ttsr"]
    assert "results/models/srresnet/checkpoint.pt" not in jobs["srgan"]


@pytest.mark.slow
def test_trained_on_realistic_lr_variant_end_to_end(smoke_run, tmp_path):
    """`snakemake ablations` on (a copy of) the finished smoke run with a variant trained on
    realistic LR: only the variant's chain is trained, on the realistic training split (its own
    LR folder and correspondences), its SR differs from the bicubic-trained model's on the same
    realistic test LR, and the table compares it with that variant (its baseline)."""
    import torch
    import yaml
    from conftest import SMOKE, copy_of_run, planned_jobs, snakemake, wildcards

    from refsr.core.imageio import read_image

    wd = copy_of_run(smoke_run, tmp_path / "run")
    (wd / "abl.yaml").write_text(yaml.safe_dump({"ablations": [
        {"name": "srntt_test_realistic", "model": "srntt", "test_degradation": "realistic"},
        {"name": "srntt_train_realistic_test_realistic", "model": "srntt", "train_degradation": "realistic",
         "test_degradation": "realistic", "baseline": "srntt_test_realistic"}],
        "match_study": {"angles": [0]}}))
    configs = [SMOKE, "abl.yaml"]
    jobs = planned_jobs(wd, configs, ["ablations"])
    assert "train" not in jobs and "infer" not in jobs, jobs  # the main run's models are reused
    assert wildcards(jobs["train_variant"], "model") == ["srntt", "srntt_l2", "srresnet"]
    snakemake(wd, "ablations", "--cores", "2", "--configfile", *configs)
    res = wd / "results"
    lr_main, lr_train = res / "data/embedded/lr", res / "data/embedded/lr_test_bicubic_train_realistic"
    record = json.loads((lr_train / "degradation.json").read_text())
    assert (record["test"], record["train"]) == ("bicubic", "realistic") and record["draws"]
    pair = sorted((lr_main / "train").glob("*.png"))[0].name
    assert not np.array_equal(read_image(lr_main / "train" / pair), read_image(lr_train / "train" / pair))
    assert np.array_equal(read_image(lr_main / "test/chelsea.png"), read_image(lr_train / "test/chelsea.png"))
    chain = res / "ablation/train_realistic"
    for model in ("srresnet", "srntt_l2", "srntt"):
        a = torch.load(res / f"models/{model}/checkpoint.pt", weights_only=False)
        b = torch.load(chain / f"models/{model}/checkpoint.pt", weights_only=False)
        key = next(k for k, v in a["state_dict"].items() if v.is_floating_point())
        assert not torch.equal(a["state_dict"][key], b["state_dict"][key]), model
    assert len(list((chain / "correspondence/embedded").glob("*.npz"))) == 8
    base_sr = res / "ablation/embedded/srntt_test_realistic/sr/chelsea/L1.png"
    var_sr = res / "ablation/embedded/srntt_train_realistic_test_realistic/sr/chelsea/L1.png"
    assert not np.array_equal(read_image(base_sr), read_image(var_sr))
    table = pd.read_csv(res / "tables/ablation.csv")
    row = table[(table["variant"] == "srntt_train_realistic_test_realistic") & (table["level"] == "L1")].iloc[0]
    assert row["baseline"] == "srntt_test_realistic"
    other = table[(table["variant"] == "srntt_test_realistic") & (table["level"] == "L1")].iloc[0]
    assert row["psnr_base"] == pytest.approx(other["psnr"])
    assert row["d_psnr"] == pytest.approx(row["psnr"] - other["psnr"])
    assert "training LR (degradation.train" in row["change"]
    assert planned_jobs(wd, configs, ["ablations"]) == {}

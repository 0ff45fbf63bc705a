"""The ablation table (deltas, paired sign counts) and the known-correspondence match study."""

from __future__ import annotations

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
    from test_workflow import ROOT, snakemake, workdir

    wd = workdir(tmp_path)
    base = ["-n", "--cores", "1", "-s", str(ROOT / "workflow/Snakefile"), "-d", str(wd)]
    out = snakemake(*base, "ablations").stdout
    for rule in ("ablation_variant", "match_study", "rule ablation:", "degrade_variant", "lr_realistic"):
        assert rule in out
    assert "srntt_align_homography" in out and "srntt_l2_align_homography" in out
    # the SR-domain variant waits for the SISR model it matches with
    job = next(b for b in out.split("\nrule ")[1:] if "variant=srntt_degrade_sr_model" in b)
    assert "results/models/srresnet/checkpoint.pt" in job.split("output:")[0], job
    # A variant of a model that is not run (or takes no reference) is refused, naming the key;
    # the main run's DAG does not depend on the ablations.
    (wd / "few.yaml").write_text("models: [bicubic, srresnet]\n")
    proc = snakemake(*base, "--configfile", str(wd / "few.yaml"), "ablations", check=False)
    assert proc.returncode != 0 and "ablations" in proc.stdout + proc.stderr
    assert snakemake(*base, "--configfile", str(wd / "few.yaml")).returncode == 0


def test_main_run_degrade_sr_model_infers_after_the_sisr_model(tmp_path):
    """reference.degrade: sr_model in the main run: every reference-based model's inference
    takes the SISR checkpoint (reference.sisr_model) as an input; the SISR models' do not."""
    from test_workflow import ROOT, snakemake, workdir

    wd = workdir(tmp_path)
    (wd / "sr.yaml").write_text("reference: {degrade: sr_model, sisr_model: srresnet}\n")
    out = snakemake("-n", "-p", "--cores", "1", "-s", str(ROOT / "workflow/Snakefile"), "-d", str(wd),
                    "--configfile", str(wd / "sr.yaml")).stdout
    jobs = {}
    for block in out.split("rule infer:")[1:]:
        model = block.split("model=")[1].split()[0].rstrip(",")
        jobs[model] = block.split("output:")[0]
    assert "results/models/srresnet/checkpoint.pt" in jobs["srntt"]
    assert "results/models/srresnet/checkpoint.pt" in jobs["ttsr"]
    assert "results/models/srresnet/checkpoint.pt" not in jobs["srgan"]

"""Figures: metric vs level, comparison grid, correspondence (PNG + PDF written, non-empty)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import skimage.data
from PIL import Image

from refsr.core.config import validate
from refsr.core.errors import RefsrError
from refsr.data.layout import EVAL_LEVELS, LEVELS, Dataset, write_manifest
from refsr.data.resize import degrade
from refsr.report.figures import (
    borrowed_mosaic,
    comparison_columns,
    level_positions,
    plot_comparison_grid,
    plot_metric_vs_level,
    position_colours,
    textured_window,
)
from refsr.report.summary import load_evals, summarise
from refsr.similarity.tiers import assign_tiers, read_tiers, write_tiers
from refsr.stages.evaluate import run_evaluation
from refsr.stages.figures import run_figures

MODELS = ["bicubic", "srresnet", "srntt"]
CONFIG = validate({"scale": 4, "resize": "matlab", "device": "cpu", "vgg19_weights": None,
                   "matching": {"max_mb": 64},
                   "evaluation": {"lpips": False, "grid_crop": 24, "grid_levels": ["L1", "L5"],
                                  "levels_figure_metrics": ["psnr", "ssim", "lpips"]}})


def _nonempty(path) -> bool:
    return path.is_file() and path.stat().st_size > 1000


@pytest.fixture
def tiny(tmp_path):
    """Two 48x48 test groups with five references each, LR, tiers CSV and SR outputs."""
    from refsr.data import layout
    from refsr.data.lr import lr_path

    photo = skimage.data.astronaut()
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    groups, tiers = [], []
    sr_root = tmp_path / "sr"
    for gi, (y, x) in enumerate([(100, 180), (300, 120)]):
        name = f"g{gi}"
        hr = photo[y:y + 48, x:x + 48]
        Image.fromarray(hr).save(root / "images" / f"{name}.png")
        g = layout.TestGroup(name, hr=root / "images" / f"{name}.png")
        for k, lv in enumerate(LEVELS):
            ref = photo[y + 4 * k:y + 4 * k + 56, x + 6 * k:x + 6 * k + 56]
            p = root / "images" / f"{name}_{lv}.png"
            Image.fromarray(ref).save(p)
            g.refs[lv], g.levels[lv] = p, lv
            tiers.append({"group": name, "ref": lv, "level": lv, "local_inliers": 10 - k,
                          "vgg_cosine": 0.9 - 0.1 * k})
        groups.append(g)
        _, lr = degrade(hr, 4)
        lr_file = lr_path(root / "lr", "test", name)
        lr_file.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(lr).save(lr_file)
        rng = np.random.RandomState(gi)
        for mi, model in enumerate(MODELS):
            for li, lv in enumerate(EVAL_LEVELS):
                if (model, name, lv) == ("srntt", "g1", "L3"):
                    continue  # one missing output
                noise = rng.randint(-20, 21, hr.shape) * (3 - mi) // (1 + (li == 6))
                sr = np.clip(hr.astype(int) + noise, 0, 255).astype(np.uint8)
                (sr_root / model / name).mkdir(parents=True, exist_ok=True)
                Image.fromarray(sr).save(sr_root / model / name / f"{lv}.png")
    ds = Dataset("tiny", root, groups=groups)
    write_manifest(ds, root / "manifest.csv")
    write_tiers(assign_tiers(pd.DataFrame(tiers), "per_image"), tmp_path / "tiers.csv")
    csvs = []
    for model in MODELS:
        csv = tmp_path / "eval" / "tiny" / f"{model}.csv"
        run_evaluation(ds, sr_root / model, model, CONFIG, tmp_path / "tiers.csv", csv,
                       csv.with_suffix(".json"))
        csvs.append(csv)
    return {"ds": ds, "sr_root": sr_root, "lr": root / "lr", "tiers": tmp_path / "tiers.csv",
            "csvs": csvs, "tmp": tmp_path}



def dirs(tiny) -> dict:
    """model -> its SR folder (what the figures rule's inputs give the stage)."""
    return {m: tiny["sr_root"] / m for m in MODELS}

def test_metric_vs_level_png_and_pdf(tiny):
    evals, _ = load_evals(tiny["csvs"])
    summary = summarise(evals)
    assert summary.loc[(summary["model"] == "srntt") & (summary["level"] == "L3"), "n_missing"].item() == 1
    png, pdf = tiny["tmp"] / "f" / "lv.png", tiny["tmp"] / "f" / "lv.pdf"
    plot_metric_vs_level(summary, MODELS, ["psnr", "ssim", "lpips"], "tiny", png, pdf,
                         lpips_available=False, lpips_reason="LPIPS not computed: offline")
    assert _nonempty(png) and _nonempty(pdf)
    assert Image.open(png).size[0] > Image.open(png).size[1]


def test_comparison_grid(tiny):
    evals = {m: pd.read_csv(c) for m, c in zip(MODELS, tiny["csvs"], strict=True)}
    tiers = read_tiers(tiny["tiers"])
    png = tiny["tmp"] / "grid.png"
    names = plot_comparison_grid(tiny["ds"], dirs(tiny), MODELS, tiers, evals, png,
                                 levels=["L1", "L3"], crop=24)
    assert names == ["g0", "g1"] and _nonempty(png)
    labels = [c[0] for c in comparison_columns(MODELS, ["L1", "L3"])]
    assert labels == ["HR", "Bicubic", "SRResNet", "SRNTT L1", "SRNTT L3"]
    assert [c[2] for c in comparison_columns(MODELS, ["L1", "L3"])] == ["HR", "LR", "LR", "L1", "L3"]
    assert [c[0] for c in comparison_columns(["srgan", "srntt_l2"], ["L2"])] == \
        ["HR", "SRGAN", "SRNTT-\u21132 L2"]


def test_helpers():
    img = np.zeros((40, 40, 3), np.uint8)
    img[20:30, 8:18] = np.indices((10, 10)).sum(0)[..., None] % 2 * 255  # a checkerboard
    y, x = textured_window(img, 10)
    assert 16 <= y <= 20 and 4 <= x <= 8
    code = position_colours(5, 7)
    assert code.shape == (5, 7, 3) and len({tuple(c) for c in code.reshape(-1, 3).round(6)}) == 35
    ref = np.arange(16 * 12 * 3, dtype=np.uint8).reshape(16, 12, 3)
    py, px = np.array([[3, 0]]), np.array([[2, 1]])
    m = borrowed_mosaic(ref, py, px, 4)
    assert m.shape == (4, 8, 3)
    assert (m[:, :4] == ref[12:16, 8:12]).all() and (m[:, 4:] == ref[0:4, 4:8]).all()
    pos = level_positions()
    assert list(pos) == list(EVAL_LEVELS) and pos["LR"] - pos["L5"] > 1


def test_run_figures_with_correspondence(tiny, vgg_weights):
    outs = {f"{k}_{e}": str(tiny["tmp"] / "figs" / f"{k}.{e}")
            for k in ("levels", "grid", "corr") for e in ("png", "pdf")}
    run_figures(tiny["ds"], tiny["csvs"], dirs(tiny), tiny["lr"], tiny["tiers"], MODELS,
                CONFIG, outs)
    for key, path in outs.items():
        assert _nonempty(tiny["tmp"] / "figs" / path.rsplit("/", 1)[1]), key
    meta = json.loads(tiny["csvs"][0].with_suffix(".json").read_text())
    assert meta["missing"]["count"] == 0


def test_run_figures_on_a_set_without_references(tiny, vgg_weights):
    """Urban100 / Manga109: no group has a reference, so the correspondence figure shows the
    matching with the LR as its own reference (level LR), as those sets are evaluated."""
    from refsr.data.layout import TestGroup

    ds = Dataset("bare", tiny["ds"].root, groups=[TestGroup(g.name, hr=g.hr) for g in tiny["ds"].groups])
    tiers = tiny["tmp"] / "tiers_bare.csv"
    from refsr.similarity.tiers import COLUMNS as TIER_COLUMNS

    tiers.write_text(",".join(TIER_COLUMNS) + "\n")
    for level in (*LEVELS, "ALL", "ALL_STITCHED"):  # what inference leaves for a reference-based model
        for g in ds.groups:
            (tiny["sr_root"] / "srntt" / g.name / f"{level}.png").unlink(missing_ok=True)
    outs = {f"{k}_{e}": str(tiny["tmp"] / "bare" / f"{k}.{e}")
            for k in ("levels", "grid", "corr") for e in ("png", "pdf")}
    run_figures(ds, tiny["csvs"], dirs(tiny), tiny["lr"], tiers, MODELS, CONFIG, outs)
    assert _nonempty(tiny["tmp"] / "bare" / "corr.png") and _nonempty(tiny["tmp"] / "bare" / "corr.pdf")
    # a dataset that has references but none at L1 for the requested image still refuses
    cfg = validate({**CONFIG, "evaluation": {**CONFIG["evaluation"], "correspondence_image": "g0"}})
    with pytest.raises(RefsrError, match="^image g0: has no reference at level L1 in the tiers table"):
        run_figures(tiny["ds"], tiny["csvs"], dirs(tiny), tiny["lr"], tiers, MODELS, cfg, outs)

"""A folder dataset of real photos gets levels per image (issue 16): every image has L1 (and L5
with >= 2 candidates), one used reference per (image, level), and the evaluation and tables
tell structural absence (an image has no reference at a level: a mean over the others, with
n = k/N) from failure (an SR output that should exist does not: the dagger)."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest
import torch
from conftest import arch, make_photo_folder

from refsr.core.config import validate
from refsr.data import build_to, layout, read_manifest
from refsr.data.layout import LEVELS, Dataset, write_manifest
from refsr.data.lr import write_lr
from refsr.inference.resolver import SuperResolver
from refsr.models.checkpoint import arch_config, build_model, save_checkpoint
from refsr.report.summary import ABSENT_MD, MISSING_MD, load_evals, summarise
from refsr.similarity.tiers import rank_level, read_tiers
from refsr.stages.evaluate import run_evaluation
from refsr.stages.figures import run_figures
from refsr.stages.infer import run_inference
from refsr.stages.tables import run_tables
from refsr.stages.tiers import run_tiers

COUNTS = {"motorcycle": 3, "astronaut": 5, "coffee": 7}  # candidates per image
EXPECTED = {3: ["L1", "L3", "L5"], 5: list(LEVELS), 7: ["L1", "L2", "L2", "L3", "L4", "L4", "L5"]}
TIERS_CFG = {"local_features": "sift", "ratio": 0.75, "ransac_px": 5.0, "max_mb": 64,
             "assign": "per_image"}
CONFIG = validate({"scale": 4, "resize": "matlab", "device": "cpu", "vgg19_weights": None,
                   "matching": {"max_mb": 64},
                   "evaluation": {"lpips": False, "stlpips": False, "grid_crop": 24,
                                  "grid_levels": ["L1", "L3"],
                                  "levels": ["L1", "L2", "L3", "L4", "L5", "LR", "HR"]}})
LEVELS_HERE = CONFIG["evaluation"]["levels"]  # the all-reference levels are tested elsewhere
MODELS = ["bicubic", "srresnet", "srntt"]
ARCH = arch(n_blocks=1, n_feats=8, n_blocks_transfer=[1, 1, 1])


def tier_outputs(path):
    return {"csv": path / "tiers.csv", "agreement_csv": path / "agree.csv",
            "agreement_md": path / "agree.md", "png": path / "tiers.png", "pdf": path / "tiers.pdf"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory, vgg_weights):
    """The 3 / 5 / 7 candidate folder dataset, built, degraded and tiered."""
    tmp = tmp_path_factory.mktemp("folder")
    chosen = make_photo_folder(tmp / "src", COUNTS)
    ds = build_to("mine", {"kind": "folder", "hr_dir": str(tmp / "src/hr"),
                           "refs_dir": str(tmp / "src/refs")}, tmp / "mine", 4)
    write_lr(ds, tmp / "mine" / "lr")
    outs = tier_outputs(tmp)
    run_tiers(ds, tmp / "mine" / "lr", outs, TIERS_CFG, 4, "matlab", None)
    return {"ds": ds, "tmp": tmp, "chosen": chosen, "tiers": outs["csv"], "lr": tmp / "mine" / "lr"}


def _checkpoint(path, name):
    torch.manual_seed(0)
    sizes = arch_config(name, ARCH)
    model = build_model(name, sizes)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_checkpoint(path, model, name, sizes)
    return str(path)


def _resolver(tmp, model):
    ckpt = None if model == "bicubic" else _checkpoint(tmp / f"{model}.pt", model)
    return SuperResolver(ckpt, model=model, tile=0, max_mb=64)


def test_every_image_gets_l1_and_l5_and_the_rule_levels(folder):
    tiers = read_tiers(folder["tiers"])
    assert set(tiers["level"]) == {""}  # a folder dataset gives no levels
    for group, n in COUNTS.items():
        part = tiers[tiers["group"] == group]
        assert len(part) == n
        assert sorted(part["tier"]) == EXPECTED[n], (group, list(part["tier"]))
        ranked = part.sort_values("combined", ascending=False)
        assert ranked["tier"].iloc[0] == "L1" and ranked["tier"].iloc[-1] == "L5"
        # the best is a window of the same scene, the worst an unrelated photo
        assert ranked["ref"].iloc[0] in {"near", "shifted", "partial"}
        assert ranked["ref"].iloc[-1].startswith("other_")


def test_one_used_reference_per_level_the_best_scored(folder):
    tiers = read_tiers(folder["tiers"])
    for (group, level), part in tiers.groupby(["group", "tier"]):
        assert part["used"].sum() == 1, (group, level)
        assert part.loc[part["used"], "combined"].item() == part["combined"].max()
    shared = tiers[tiers["group"] == "coffee"].groupby("tier")["used"].agg(["size", "sum"])
    assert list(shared.loc[["L2", "L4"], "size"]) == [2, 2]  # 7 candidates: two share L2, L4


def test_tiers_caption_states_the_rule(folder):
    md = (folder["tmp"] / "agree.md").read_text()
    assert "assigned per image (tiers.assign: per_image)" in md and "`used`" in md
    # 3 candidates (motorcycle): L1, L3, L5, so L2 and L4 are absent; 5 and 7 have every level
    assert "2 (image, level) cells of L1..L5 have no reference" in md


def test_structural_absence_and_failure_through_infer_evaluate_tables(folder):
    ds, tmp = folder["ds"], folder["tmp"]
    sr_root, csvs = tmp / "sr", []
    for model in MODELS:
        n = run_inference(ds, folder["lr"], folder["tiers"], _resolver(tmp, model), sr_root / model,
                          LEVELS_HERE)
        assert n == 2 * 3 + 3 + 5 + 5  # LR, HR of 3 images + the levels each image has
        assert sorted(p.stem for p in (sr_root / model / "motorcycle").iterdir()) == \
            sorted(["L1", "L3", "L5", "LR", "HR"])
    (sr_root / "srntt" / "coffee" / "L4.png").unlink()  # a failure: an output that should exist
    for model in MODELS:
        csv = tmp / "eval" / "mine" / f"{model}.csv"
        run_evaluation(ds, sr_root / model, model, CONFIG, folder["tiers"], csv,
                       csv.with_suffix(".json"))
        csvs.append(csv)
    meta = json.loads((tmp / "eval" / "mine" / "srntt.json").read_text())
    assert meta["absent"]["cells"] == [["motorcycle", "L2"], ["motorcycle", "L4"]]
    assert meta["missing"]["cells"] == [["coffee", "L4"]]
    ev = pd.read_csv(csvs[-1])
    assert len(ev) == 3 * 7 - 2  # no rows for the structurally absent cells
    assert ev.loc[(ev["image"] == "coffee") & (ev["level"] == "L4"), "psnr"].isna().all()

    evals, _ = load_evals(csvs)
    s = summarise(evals, LEVELS_HERE).set_index(["model", "level"])
    for model in MODELS:
        assert s.loc[(model, "L2"), "n_level"] == 2 and s.loc[(model, "L2"), "n_images"] == 3
        l2 = ev if model == "srntt" else pd.read_csv(tmp / "eval" / "mine" / f"{model}.csv")
        want = l2.loc[l2["level"] == "L2", "psnr"].mean()  # over astronaut and coffee
        assert s.loc[(model, "L2"), "psnr"] == pytest.approx(want)
        assert s.loc[(model, "L1"), "n_level"] == 3
    assert pd.isna(s.loc[("srntt", "L4"), "psnr"]) and s.loc[("srntt", "L4"), "n_missing"] == 1
    assert s.loc[("srresnet", "L4"), "n_missing"] == 0

    outs = {f"{k}_{e}": tmp / "tables" / f"{k}.{e}" for k in ("main", "per_level")
            for e in ("csv", "md", "tex")}
    run_tables(csvs, CONFIG, MODELS, ["mine"], outs)
    md = outs["per_level_md"].read_text()
    srntt = next(line for line in md.splitlines() if line.startswith("| srntt"))
    cells = [c.strip() for c in srntt.strip("|").split("|")][1:]
    by_level = dict(zip(LEVELS_HERE, cells, strict=True))
    assert by_level["L2"].endswith("(n = 2/3)") and by_level["L2"][0].isdigit()
    assert by_level["L4"] == f"{MISSING_MD} / {MISSING_MD} / n/a / n/a"  # the failure stays loud
    assert "(n =" not in by_level["L1"] and by_level["L1"][0].isdigit()
    assert "1 of 2 images with a reference at this level missing" in md
    assert "n = k/N: mean over the k of the N test images" in md
    assert ABSENT_MD + " (n = 0" not in md  # every level has some image here
    tex = outs["per_level_tex"].read_text()
    assert "($n = 2/3$)" in tex

    figs = {f"{k}_{e}": str(tmp / "figs" / f"{k}.{e}") for k in ("levels", "grid", "corr")
            for e in ("png", "pdf")}
    run_figures(ds, csvs, {m: sr_root / m for m in MODELS}, folder["lr"], folder["tiers"], MODELS, CONFIG, figs)
    assert all((tmp / "figs" / f"{k}.png").stat().st_size > 1000 for k in ("levels", "grid", "corr"))


def _no_ref_dataset(tmp, folder, names):
    """A dataset of the folder's HR images where the groups in ``names`` have no candidates."""
    src = folder["ds"]
    groups = [layout.TestGroup(g.name, hr=g.hr, refs={} if g.name in names else dict(g.refs),
                        levels={} if g.name in names else dict(g.levels)) for g in src.groups]
    ds = Dataset("bare", tmp, groups=groups)
    write_manifest(ds, tmp / "manifest.csv")
    return read_manifest(tmp / "manifest.csv", "bare")


@pytest.mark.parametrize("bare", [("astronaut",), tuple(COUNTS)], ids=["one-image", "all-images"])
def test_images_without_any_reference_go_through(bare, folder, tmp_path):
    """A group with zero candidates (the folder kind refuses one, so built at the function
    level; a dataset with only LR and HR levels has none in any group): empty tiers rows,
    L1..L5 structurally absent, LR and HR evaluated, tables and figures without errors."""
    ds = _no_ref_dataset(tmp_path, folder, set(bare))
    outs = tier_outputs(tmp_path)
    tiers = run_tiers(ds, folder["lr"], outs, TIERS_CFG, 4, "matlab", None)
    assert set(tiers["group"]).isdisjoint(bare)
    back = read_tiers(outs["csv"])
    assert len(back) == len(tiers)
    for g in set(COUNTS) - set(bare):
        assert "L1" in set(back.loc[back["group"] == g, "tier"])
    csvs = []
    for model in ("bicubic", "srntt"):
        sr = tmp_path / "sr" / model
        run_inference(ds, folder["lr"], outs["csv"], _resolver(tmp_path, model), sr, LEVELS_HERE)
        for g in bare:
            assert sorted(p.stem for p in (sr / g).iterdir()) == ["HR", "LR"]
        csv = tmp_path / "eval" / "bare" / f"{model}.csv"
        run_evaluation(ds, sr, model, CONFIG, outs["csv"], csv, csv.with_suffix(".json"))
        csvs.append(csv)
        meta = json.loads(csv.with_suffix(".json").read_text())
        assert meta["missing"]["count"] == 0
        assert meta["absent"]["count"] == 5 * len(bare) + (2 if "motorcycle" not in bare else 0)
    tables = {f"{k}_{e}": tmp_path / "tables" / f"{k}.{e}" for k in ("main", "per_level")
              for e in ("csv", "md", "tex")}
    run_tables(csvs, CONFIG, ["bicubic", "srntt"], ["bare"], tables)
    md = tables["per_level_md"].read_text()
    row = next(line for line in md.splitlines() if line.startswith("| srntt"))
    cells = dict(zip(LEVELS_HERE, [c.strip() for c in row.strip("|").split("|")][1:], strict=True))
    assert MISSING_MD not in row
    assert cells["LR"][0].isdigit() and "(n =" not in cells["HR"]
    if len(bare) == len(COUNTS):
        assert all(cells[lv] == f"{ABSENT_MD} (n = 0/3)" for lv in LEVELS)
        assert f"{ABSENT_MD} (n = 0/3)" in tables["main_md"].read_text()
    else:
        assert cells["L1"].endswith("(n = 2/3)")
    figs = {f"{k}_{e}": str(tmp_path / "figs" / f"{k}.{e}") for k in ("levels", "grid", "corr")
            for e in ("png", "pdf")}
    run_figures(ds, csvs, {m: tmp_path / "sr" / m for m in ("bicubic", "srntt")}, folder["lr"], outs["csv"],
                ["bicubic", "srntt"],
                CONFIG, figs)
    assert (tmp_path / "figs" / "corr.png").stat().st_size > 1000


def test_rank_level_rule():
    assert [rank_level(r, 1) for r in range(1)] == ["L1"]
    for n, want in EXPECTED.items():
        assert [rank_level(r, n) for r in range(n)] == want
    assert [rank_level(r, 2) for r in range(2)] == ["L1", "L5"]
    assert [rank_level(r, 4) for r in range(4)] == ["L1", "L2", "L4", "L5"]
    for n in range(2, 60):
        got = [LEVELS.index(rank_level(r, n)) for r in range(n)]
        assert got[0] == 0 and got[-1] == 4 and got == sorted(got)
        assert [4 - i for i in reversed(got)] == got  # reversing the ranking mirrors the levels
        if n >= 5:
            assert set(got) == set(range(5))
        if n >= 5:  # quintiles: the levels' counts differ by at most one
            counts = Counter(got)
            assert max(counts.values()) - min(counts.values()) <= 1, (n, counts)
    assert Counter(rank_level(r, 100) for r in range(100)) == dict.fromkeys(LEVELS, 20)
    with pytest.raises(ValueError):
        rank_level(3, 3)

"""Similarity scores and tiers: local features, VGG score, tier assignment, agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from refsr.core.errors import RefsrError
from refsr.data import build_to
from refsr.data.layout import LEVELS
from refsr.data.lr import write_lr
from refsr.similarity.local import LocalFeatureMatcher
from refsr.similarity.tiers import (
    ASSIGN,
    COLUMNS,
    absent_levels,
    assign_tiers,
    level_agreement,
    read_tiers,
    write_tiers,
)
from refsr.similarity.vgg_score import VGGSimilarity
from refsr.stages.tiers import run_tiers


@pytest.fixture(scope="module")
def photo():
    import skimage.data

    return skimage.data.astronaut()


def test_local_features_prefer_the_same_scene(photo):
    m = LocalFeatureMatcher("sift")
    same = m.score(photo[100:260, 100:260], photo[110:270, 116:276])
    other = m.score(photo[100:260, 100:260], np.ascontiguousarray(np.rot90(photo[300:460, 300:460])))
    assert same > 50 > other
    assert LocalFeatureMatcher("orb").score(photo[:200, :200], photo[:200, :200]) > 20


def test_local_features_on_textureless_images():
    flat = np.full((64, 64, 3), 128, np.uint8)
    assert LocalFeatureMatcher().score(flat, flat) == 0


def test_vgg_score_of_identical_images_is_highest(photo, vgg_weights):
    from refsr.data.resize import degrade

    hr, lr = degrade(photo[100:196, 100:196])
    sim = VGGSimilarity()
    self_score = sim.score(lr, hr)
    assert 0.9 < self_score <= 1.0 + 1e-5  # interior cosines are 1; zero-padded borders lower it
    assert sim.score(lr, photo[300:396, 300:396]) < self_score


@pytest.mark.parametrize("assign", ASSIGN)
def test_given_levels_are_kept(assign):
    df = pd.DataFrame({"group": ["a"] * 5, "ref": list(LEVELS), "level": list(LEVELS),
                       "local_inliers": [5, 4, 3, 2, 1], "vgg_cosine": [0.1, 0.2, 0.3, 0.4, 0.5]})
    out = assign_tiers(df, assign)
    assert list(out.columns) == list(COLUMNS)
    assert list(out["tier"]) == list(LEVELS) and out["used"].all()
    agree = level_agreement(out).set_index("score")
    assert agree.loc["local_inliers", "spearman_rho"] == pytest.approx(-1.0)
    assert agree.loc["vgg_cosine", "spearman_rho"] == pytest.approx(1.0)


def _scores(groups, inliers, cosines):
    return pd.DataFrame({"group": groups, "ref": [f"r{i}" for i in range(len(groups))],
                         "level": [""] * len(groups), "local_inliers": inliers,
                         "vgg_cosine": cosines})


def test_global_assign_cuts_quintiles_over_all_pairs():
    n = 20
    df = _scores([f"g{i % 4}" for i in range(n)], np.arange(n)[::-1], np.linspace(0.9, 0.1, n))
    out = assign_tiers(df, "global")
    assert list(out["tier"]) == [lv for lv in LEVELS for _ in range(4)]  # most similar first
    assert out.groupby(["group", "tier"])["used"].sum().eq(1).all()


def test_per_image_gives_every_image_l1_where_global_does_not():
    # image a's candidates are all less similar than image b's
    df = _scores(["a"] * 5 + ["b"] * 5, [5, 4, 3, 2, 1, 50, 40, 30, 20, 10],
                 [0.50, 0.45, 0.40, 0.35, 0.30, 0.95, 0.90, 0.85, 0.80, 0.75])
    glob = assign_tiers(df, "global")
    assert "L1" not in set(glob.loc[glob["group"] == "a", "tier"])
    per = assign_tiers(df, "per_image")
    for g in ("a", "b"):
        assert list(per.loc[per["group"] == g, "tier"]) == list(LEVELS)
    # an image's levels depend on its own candidates only
    alone = assign_tiers(df[df["group"] == "a"], "per_image")
    assert list(alone["tier"]) == list(per.loc[per["group"] == "a", "tier"])


def test_ties_are_broken_by_vgg_then_inliers_then_name():
    # r0 and r1 tie on the combined score (each best on one score); r1 has the higher cosine
    df = _scores(["a"] * 3, [10, 5, 1], [0.5, 0.6, 0.1])
    out = assign_tiers(df, "per_image").set_index("ref")
    assert out.loc["r0", "combined"] == out.loc["r1", "combined"]
    assert out.loc["r1", "tier"] == "L1" and out.loc["r0", "tier"] == "L3"
    same = assign_tiers(_scores(["a"] * 2, [3, 3], [0.5, 0.5]), "per_image").set_index("ref")
    assert list(same["tier"]) == ["L1", "L5"]  # identical scores: by name


def test_used_is_the_best_scored_reference_of_a_shared_level():
    df = _scores(["a"] * 7, [70, 60, 50, 40, 30, 20, 10], [0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    df = df.iloc[::-1].reset_index(drop=True)  # order in the table does not matter
    out = assign_tiers(df, "per_image").set_index("ref")
    assert list(out.loc[[f"r{i}" for i in range(7)], "tier"]) == \
        ["L1", "L2", "L2", "L3", "L4", "L4", "L5"]
    assert out.loc["r1", "used"] and not out.loc["r2", "used"]
    assert out.loc["r4", "used"] and not out.loc["r5", "used"]
    assert out["used"].sum() == 5


def test_no_references_gives_an_empty_table_and_every_level_absent(tmp_path):
    empty = _scores([], [], [])
    for assign in ASSIGN:
        out = assign_tiers(empty, assign)
        assert list(out.columns) == list(COLUMNS) and len(out) == 0
    write_tiers(out, tmp_path / "t.csv")
    back = read_tiers(tmp_path / "t.csv")
    assert len(back) == 0
    assert absent_levels(back, ["x", "y"], LEVELS) == [(g, lv) for g in ("x", "y") for lv in LEVELS]
    every = [(g, lv) for g in ("x", "y") for lv in (*LEVELS, "ALL", "ALL_STITCHED")]
    assert absent_levels(back, ["x", "y"]) == every  # no reference at all: ALL and ALL_STITCHED too
    agree = level_agreement(back)
    assert agree["spearman_rho"].isna().all()


def test_read_tiers_checks_the_file(tmp_path):
    with pytest.raises(RefsrError, match="tiers CSV not found"):
        read_tiers(tmp_path / "nope.csv")
    old = tmp_path / "old.csv"
    old.write_text("group,ref,level,local_inliers,vgg_cosine,tier\na,r,,1,0.5,L1\n")
    with pytest.raises(RefsrError, match="not a tiers CSV"):
        read_tiers(old)
    with pytest.raises(RefsrError, match="tiers.assign"):
        assign_tiers(_scores(["a"], [1], [0.5]), "by_magic")


def test_folder_dataset_gets_tiers(tmp_path, photo, vgg_weights):
    hr_dir, refs_dir = tmp_path / "hr", tmp_path / "refs"
    hr_dir.mkdir()
    for name, (y, x) in {"a": (60, 60), "b": (250, 250)}.items():
        Image.fromarray(photo[y:y + 96, x:x + 96]).save(hr_dir / f"{name}.png")
        (refs_dir / name).mkdir(parents=True)
        Image.fromarray(photo[y + 4:y + 100, x + 8:x + 104]).save(refs_dir / name / "near.png")
        Image.fromarray(photo[y + 40:y + 136, x + 40:x + 136]).save(refs_dir / name / "half.png")
        Image.fromarray(np.ascontiguousarray(photo[::-1, ::-1][:96, :96])).save(refs_dir / name / "far.png")
    ds = build_to("mine", {"kind": "folder", "hr_dir": str(hr_dir), "refs_dir": str(refs_dir)},
                  tmp_path / "mine", 4)
    write_lr(ds, tmp_path / "mine" / "lr")
    outs = {k: tmp_path / f"out.{k}" for k in ("csv", "agreement_csv", "agreement_md", "png", "pdf")}
    outs = {k: v.with_suffix(f".{k.split('_')[-1]}") if k != "csv" else v for k, v in outs.items()}
    outs["agreement_csv"] = tmp_path / "agree.csv"
    outs["agreement_md"] = tmp_path / "agree.md"
    cfg = {"local_features": "sift", "ratio": 0.75, "ransac_px": 5.0, "max_mb": 64,
           "assign": "global"}
    df = run_tiers(ds, tmp_path / "mine" / "lr", outs, cfg, 4, "matlab", None)
    assert set(df["level"]) == {""}
    by_ref = df.groupby("ref")["tier"].agg(lambda s: sorted(s))
    assert all(t in {"L1", "L2"} for t in by_ref["near"])
    assert all(t in {"L4", "L5"} for t in by_ref["far"])
    assert "assigned from global quintiles" in (tmp_path / "agree.md").read_text()
    df = run_tiers(ds, tmp_path / "mine" / "lr", outs, {**cfg, "assign": "per_image"}, 4,
                   "matlab", None)
    assert list(df.set_index("ref").loc[["near", "half", "far"], "tier"].drop_duplicates()) == \
        ["L1", "L3", "L5"]
    assert "assigned per image" in (tmp_path / "agree.md").read_text()
    assert list(read_tiers(outs["csv"]).columns) == list(COLUMNS)
    assert outs["png"].stat().st_size > 0

"""Similarity scores and tiers: local features, VGG score, tier assignment, agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from refsr.data import build_to
from refsr.data.layout import LEVELS
from refsr.data.lr import write_lr
from refsr.similarity.local import LocalFeatureMatcher
from refsr.similarity.tiers import assign_tiers, level_agreement
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


def test_given_levels_are_kept():
    df = pd.DataFrame({"group": ["a"] * 5, "ref": list(LEVELS), "level": list(LEVELS),
                       "local_inliers": [5, 4, 3, 2, 1], "vgg_cosine": [0.1, 0.2, 0.3, 0.4, 0.5]})
    out = assign_tiers(df)
    assert list(out["tier"]) == list(LEVELS)
    agree = level_agreement(out).set_index("score")
    assert agree.loc["local_inliers", "spearman_rho"] == pytest.approx(-1.0)
    assert agree.loc["vgg_cosine", "spearman_rho"] == pytest.approx(1.0)


def test_scores_assign_quintiles_when_no_levels():
    n = 20
    df = pd.DataFrame({"group": [f"g{i % 4}" for i in range(n)], "ref": [f"r{i}" for i in range(n)],
                       "level": [""] * n, "local_inliers": np.arange(n)[::-1],
                       "vgg_cosine": np.linspace(0.9, 0.1, n)})
    out = assign_tiers(df)
    assert list(out["tier"]) == [lv for lv in LEVELS for _ in range(4)]  # most similar first


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
    cfg = {"local_features": "sift", "ratio": 0.75, "ransac_px": 5.0, "max_mb": 64}
    df = run_tiers(ds, tmp_path / "mine" / "lr", outs, cfg, 4, "matlab", None)
    assert set(df["level"]) == {""}
    by_ref = df.groupby("ref")["tier"].agg(lambda s: sorted(s))
    assert all(t in {"L1", "L2"} for t in by_ref["near"])
    assert all(t in {"L4", "L5"} for t in by_ref["far"])
    assert "assigned from score quintiles" in (tmp_path / "agree.md").read_text()
    assert outs["png"].stat().st_size > 0

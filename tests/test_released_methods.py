"""Methods run from their authors' released weights only (C2-Matching; registry ``released_only``,
``textures: released``): the config asks for their weights, the DAG imports instead of training,
and ``refsr import-weights`` + ``refsr sr`` reproduce the released test path's PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from refsr.core.config import validate
from refsr.core.errors import RefsrError
from refsr.models import registry
from refsr.pipeline.plan import Plan

C2 = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "c2matching-released"
MASA = C2.parent / "masa-released"
RELEASED = [n for n in registry.names() if registry.get(n).released_only]


def test_released_only_models_are_reference_based_and_never_trained():
    assert {"c2matching", "c2matching_rec", "masa", "masa_rec"} <= set(RELEASED)
    for name in RELEASED:
        spec = registry.get(name)
        assert spec.has_weights and not spec.trainable and spec.uses_reference and spec.textures == "released"
        assert name not in registry.trainable()


@pytest.mark.parametrize("name", ["c2matching", "c2matching_rec", "masa", "masa_rec"])
def test_a_released_only_model_without_weights_is_one_line(name):
    with pytest.raises(RefsrError, match=rf"models.1: {name} runs from its authors' released weights only"):
        registry.check_config(validate({"models": ["bicubic", name]}))


def test_the_dag_imports_a_released_model_and_evaluates_it_at_every_level(tmp_path):
    cfg = validate({"models": ["bicubic", "c2matching"],
                    "pretrained": {"c2matching": {"source": "c2matching-official", "path": str(tmp_path)}}})
    registry.check_config(cfg)
    plan = Plan(cfg)
    assert plan.train_models == []  # nothing to train: its weights are imported
    inputs = plan.infer_inputs("embedded", "c2matching")
    assert inputs["checkpoint"] == "results/imported/c2matching/checkpoint.pt"
    assert "results/sr/embedded/c2matching" in plan.model_targets()


@pytest.fixture(scope="module")
def c2_checkpoint(tmp_path_factory):
    if not C2.is_dir():
        pytest.skip(f"no released C2-Matching fixture at {C2}")
    import os

    from refsr.models.importers import import_weights

    os.environ["REFSR_VGG19_WEIGHTS_BACKUP"] = os.environ.get("REFSR_VGG19_WEIGHTS", "")
    os.environ["REFSR_VGG19_WEIGHTS"] = str(C2 / "vgg19_features.pth")  # the fixture's seeded VGG19
    try:
        written = import_weights("c2matching-official", C2, tmp_path_factory.mktemp("c2"))
    finally:
        os.environ["REFSR_VGG19_WEIGHTS"] = os.environ.pop("REFSR_VGG19_WEIGHTS_BACKUP")
    return written["c2matching"]


def test_refsr_sr_reproduces_the_released_c2matching_png(c2_checkpoint, tmp_path):
    """The registry's checkpoint through the CLI (SuperResolver, textures released) writes the
    released test path's image for the LR it made: 0 values differ."""
    from refsr.cli import main
    from refsr.core.imageio import read_image

    out = tmp_path / "sr.png"
    assert main(["sr", "--lr", str(C2 / "lr.png"), "--ref", str(C2 / "ref.png"),
                 "--checkpoint", str(c2_checkpoint), "--model", "c2matching", "--out", str(out)]) == 0
    got, want = read_image(out), read_image(C2 / "sr_released_test.png")
    assert got.shape == want.shape and int(np.count_nonzero(got != want)) == 0


def test_refsr_sr_runs_imported_masa_as_its_released_test_path(tmp_path):
    """MASA-SR imported from the fixture's file: the pipeline's resolver gives exactly what the
    network's own super_resolve (tested against the released code in test_masa.py) gives."""
    if not MASA.is_dir():
        pytest.skip(f"no released MASA-SR fixture at {MASA}")
    from refsr.core.imageio import read_image
    from refsr.inference.resolver import SuperResolver
    from refsr.models.checkpoint import load_checkpoint
    from refsr.models.importers import import_weights
    from refsr.models.masa import super_resolve

    ckpt = import_weights("masa-official", MASA / "MASA.pth", tmp_path, model="masa")["masa"]
    hr, ref = read_image(MASA / "hr.png"), read_image(MASA / "ref1.png")
    lr = hr[::4, ::4][:17, :23].copy()  # an odd size: the network pads as released and crops
    net, _ = load_checkpoint(ckpt)
    got = SuperResolver(str(ckpt), model="masa", tile=0)(lr, [ref])
    assert got.shape == (68, 92, 3)
    assert np.array_equal(got, super_resolve(net, lr, [ref]))
    with pytest.raises(RefsrError, match="x4 network"):
        SuperResolver(str(ckpt), model="masa", scale=2)


@pytest.mark.slow
def test_the_pipeline_evaluates_each_imported_released_model_at_every_level(smoke_run, tmp_path):
    """C2-Matching and MASA-SR imported from the released code's fixture files (seeded weights,
    released layouts) on a copy of the smoke run: import_weights, infer and evaluate at every
    level of the smoke dataset but ALL_STITCHED (see below); nothing is trained."""
    if not (C2.is_dir() and MASA.is_dir()):
        pytest.skip("the released C2-Matching / MASA-SR fixtures are absent")
    import pandas as pd
    import yaml
    from conftest import SMOKE, copy_of_run, snakemake

    wd = copy_of_run(smoke_run, tmp_path / "run")
    cfg = yaml.safe_load((wd / SMOKE).read_text())
    cfg["models"] = ["bicubic", "c2matching", "masa"]
    # every level but ALL_STITCHED: C2-Matching pads the input to its reference's size as released,
    # so the 2500x500 stitched column makes it a 2500x500 image (minutes per image on a CPU)
    cfg["evaluation"]["levels"] = [lv for lv in cfg["evaluation"]["levels"] if lv != "ALL_STITCHED"]
    cfg["pretrained"] = {"c2matching": {"source": "c2matching-official", "path": str(C2)},
                         "masa": {"source": "masa-official", "path": str(MASA / "MASA.pth")}}
    (wd / "released.yaml").write_text(yaml.safe_dump(cfg))
    targets = [f"results/eval/embedded/{m}.csv" for m in ("c2matching", "masa")]
    out = snakemake(wd, *targets, "--cores", "2", "--configfile", "released.yaml").stderr
    assert "rule train:" not in out and "rule import_weights:" in out
    levels = validate(cfg)["evaluation"]["levels"]
    for model in ("c2matching", "masa"):
        ev = pd.read_csv(wd / f"results/eval/embedded/{model}.csv")
        assert set(ev["level"]) == set(levels) and ev["psnr"].notna().all(), model
        assert (wd / f"results/imported/{model}/checkpoint.pt").is_file()

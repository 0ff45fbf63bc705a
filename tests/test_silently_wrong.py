"""Issue 28: four cases where refsr was silently wrong.

1. a stale training state was resumed after the training data or the parent checkpoint changed;
2. a float image with one value above 1 (or a NaN) became black;
3. a reference identical to the HR became L1 (the oracle) without a word;
4. ``import-weights ttsr-official`` named the model by the substring "rec".
"""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import arch, tiny_training_set, train_config
from PIL import Image

from refsr.cli import main
from refsr.core.errors import RefsrError
from refsr.core.imageio import read_image
from refsr.data import build, build_to, read_manifest
from refsr.models.checkpoint import arch_config, build_model, save_checkpoint
from refsr.training.data import TrainingSet
from refsr.training.preemption import Preempted
from refsr.training.trainer import Trainer, train_model

RNG = np.random.default_rng(28)

# ----------------------------------------------------------------------------- 1. stale state

ARCH = arch(n_blocks=1, n_feats=8)
DISC = {"n_feats": 4, "n_down": 2, "n_hidden": 8}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A tiny embedded dataset with its LR images (conftest.tiny_training_set)."""
    return tiny_training_set(tmp_path_factory.mktemp("stale") / "tiny")


def _cfg(model: str, iterations: int = 4):
    return train_config(model, arch=ARCH, loss={"perceptual_layer": "relu3_1"}, iterations=iterations,
                        batch_size=2, disc=DISC, checkpoint_every=2, log_every=1)


def _srresnet_checkpoint(path: Path, seed: int) -> str:
    torch.manual_seed(seed)
    sizes = arch_config("srresnet", ARCH)
    save_checkpoint(path, build_model("srresnet", sizes), "srresnet", sizes)
    return str(path)


def _stopped_at_2(make) -> None:
    """A trainer from ``make()`` stopped (as on SIGTERM) after iteration 2: its state is saved."""
    t = make()
    with pytest.raises(Preempted):
        t.run(stop_requested=lambda: signal.SIGTERM if t.iteration == 2 else 0)


def test_case1_stale_state_not_resumed_after_parent_changed(tiny, vgg_weights, tmp_path, caplog):
    data = TrainingSet(read_manifest(tiny / "manifest.csv"), tiny / "lr")
    old = _srresnet_checkpoint(tmp_path / "old_srresnet.pt", seed=1)
    new = _srresnet_checkpoint(tmp_path / "new_srresnet.pt", seed=2)
    state = tmp_path / "state.pt"
    _stopped_at_2(lambda: Trainer(_cfg("srgan"), data, state, init_ckpt=old, vgg_weights=vgg_weights))
    with caplog.at_level(logging.WARNING):
        fresh = Trainer(_cfg("srgan"), data, state, init_ckpt=new, vgg_weights=vgg_weights)
    assert fresh.iteration == 0 and not fresh.rows
    assert f"{state}: state of a different job (parent checkpoint changed); training from scratch" in caplog.text
    same = Trainer(_cfg("srgan"), data, state, init_ckpt=old, vgg_weights=vgg_weights)
    assert same.iteration == 2  # the same job (same config, data and parent) still resumes


def test_case1_stale_state_not_resumed_after_training_data_changed(tiny, tmp_path, caplog):
    import shutil

    lr = tmp_path / "lr"
    shutil.copytree(tiny / "lr", lr)
    ds = read_manifest(tiny / "manifest.csv")
    state = tmp_path / "state.pt"
    _stopped_at_2(lambda: Trainer(_cfg("srresnet"), TrainingSet(ds, lr), state))
    assert Trainer(_cfg("srresnet"), TrainingSet(ds, lr), state).iteration == 2  # untouched: resumes
    changed = lr / "train" / f"{ds.train[0].name}.png"
    img = read_image(changed)
    Image.fromarray(255 - img).save(changed)  # new data under the same name
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with caplog.at_level(logging.WARNING):
        t = Trainer(_cfg("srresnet"), TrainingSet(ds, lr), state)
    assert t.iteration == 0
    assert "state of a different job (training data changed); training from scratch" in caplog.text
    with caplog.at_level(logging.WARNING):
        caplog.clear()
        assert Trainer(_cfg("srresnet", iterations=6), TrainingSet(ds, lr), tmp_path / "other.pt").iteration == 0
        _stopped_at_2(lambda: Trainer(_cfg("srresnet"), TrainingSet(ds, lr), tmp_path / "other.pt"))
        assert Trainer(_cfg("srresnet", iterations=6), TrainingSet(ds, lr), tmp_path / "other.pt").iteration == 0
    assert "(configuration changed)" in caplog.text


def test_case1_finished_run_removes_its_state(tiny, tmp_path):
    args = dict(manifest=str(tiny / "manifest.csv"), lr_dir=str(tiny / "lr"), corr_dir=None,
                init_ckpt=None, state_path=str(tmp_path / "state.pt"),
                checkpoint=str(tmp_path / "checkpoint.pt"), log_csv=str(tmp_path / "log.csv"))
    done = train_model(_cfg("srresnet"), **args)
    assert done.iteration == 4  # the state was saved at iterations 2 and 4 ...
    assert (tmp_path / "checkpoint.pt").is_file() and (tmp_path / "log.csv").is_file()
    assert not (tmp_path / "state.pt").exists()  # ... and removed once the checkpoint was written


# ----------------------------------------------------------------------------- 2. float images


def _float_tif(path: Path, arr: np.ndarray) -> Path:
    Image.fromarray(arr.astype(np.float32)).save(path)
    return path


def test_case2_float_image_with_one_value_above_one_keeps_its_scale(tmp_path):
    unit = RNG.random((64, 48)).astype(np.float32)
    clean = read_image(_float_tif(tmp_path / "clean.tif", unit))
    for outlier in (1.0001, 3.0, 1e6):
        spoilt = unit.copy()
        spoilt[5, 7] = outlier
        got = read_image(_float_tif(tmp_path / "spoilt.tif", spoilt))
        assert got[5, 7, 0] == 255  # the outlier is clipped to white ...
        got[5, 7] = clean[5, 7]
        np.testing.assert_array_equal(got, clean)  # ... and nothing else changes
    # a [0, 255] image with a few values <= 1 stays [0, 255]
    grey = RNG.uniform(0, 255, (64, 48)).astype(np.float32)
    grey[:2, :2] = 0.5
    np.testing.assert_array_equal(read_image(_float_tif(tmp_path / "g.tif", grey))[..., 0],
                                  np.clip(np.rint(grey), 0, 255).astype(np.uint8))
    # refsr degrade: the LR has the photo's grey levels, not a black image
    src = unit * 0.5 + 0.25
    src[0, 0] = 1.0001
    out = tmp_path / "lr.png"
    assert main(["degrade", str(_float_tif(tmp_path / "f.tif", src)), str(out)]) == 0
    assert abs(read_image(out).mean() - 127.5) < 5


@pytest.mark.parametrize("bad, kind", [(np.nan, "NaN"), (np.inf, "infinity"), (-np.inf, "infinity")])
def test_case2_float_image_with_non_finite_value_is_refused_naming_the_file(bad, kind, tmp_path, capsys):
    arr = RNG.random((32, 32)).astype(np.float32)
    arr[3, 4] = bad
    src = _float_tif(tmp_path / "f.tif", arr)
    with pytest.raises(RefsrError) as err:
        read_image(src)
    assert str(err.value).startswith(f"{src}: float image with 1 non-finite value(s) ({kind})")
    assert "\n" not in str(err.value)
    out = tmp_path / "lr.png"
    assert main(["degrade", str(src), str(out)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(src) in lines[0] and not out.exists()


def test_case2_dataset_reader_refuses_a_nan_image_and_scales_an_outlier_image(tmp_path):
    hr = RNG.random((40, 48)).astype(np.float32)
    hr[0, 0] = 1.01
    (tmp_path / "hr").mkdir()
    _float_tif(tmp_path / "hr" / "a.tif", hr)
    (tmp_path / "refs" / "a").mkdir(parents=True)
    Image.fromarray(RNG.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "refs" / "a" / "r.png")
    (tmp_path / "out").mkdir()
    ds = build("f", {"kind": "folder", "hr_dir": str(tmp_path / "hr"), "refs_dir": str(tmp_path / "refs")},
               tmp_path / "out", 4)
    assert abs(read_image(ds.groups[0].hr).mean() - 127.5) < 10
    hr[1, 1] = np.nan
    _float_tif(tmp_path / "hr" / "a.tif", hr)
    (tmp_path / "out2").mkdir()
    with pytest.raises(RefsrError, match=r"a\.tif \(float image with 1 non-finite value"):
        build("f", {"kind": "folder", "hr_dir": str(tmp_path / "hr"), "refs_dir": str(tmp_path / "refs")},
              tmp_path / "out2", 4)


# ----------------------------------------------------------------------------- 3. HR as reference


def _png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def test_case3_reference_identical_to_hr_is_excluded_with_a_warning(tmp_path, caplog):
    hr_a = RNG.integers(0, 256, (41, 47, 3), dtype=np.uint8)  # mod-cropped to 40x44 when written
    _png(tmp_path / "hr" / "a.png", hr_a)
    _png(tmp_path / "hr" / "b.png", RNG.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    _png(tmp_path / "refs" / "a" / "real.png", RNG.integers(0, 256, (41, 47, 3), dtype=np.uint8))
    link = tmp_path / "refs" / "a" / "same.png"
    link.symlink_to(tmp_path / "hr" / "a.png")  # the uncropped HR itself
    near = hr_a[:40, :44].astype(np.int16)
    near[::7, ::5] += 1  # a few pixels off by one grey level: still the HR
    _png(tmp_path / "refs" / "a" / "near.png", np.clip(near, 0, 255).astype(np.uint8))
    _png(tmp_path / "refs" / "b" / "only.png", read_image(tmp_path / "hr" / "b.png"))
    cfg = {"kind": "folder", "hr_dir": str(tmp_path / "hr"), "refs_dir": str(tmp_path / "refs")}
    with caplog.at_level(logging.WARNING):
        ds = build_to("mine", cfg, tmp_path / "out", 4)
    groups = {g.name: g for g in ds.groups}
    assert list(groups["a"].refs) == ["real"] and not groups["b"].refs
    assert sorted(p.name for p in (tmp_path / "out" / "images" / "test" / "a" / "refs").iterdir()) == ["real.png"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith(f"{link}: reference 'same' of test image 'a' is a copy of its HR image") for m in warnings)
    assert any("reference 'near'" in m and "excluded" in m for m in warnings)
    assert any("reference 'only'" in m and "b has no reference left" in m for m in warnings)


def test_case3_cufed5_reference_equal_to_hr_is_excluded(tmp_path, caplog):
    test_dir = tmp_path / "CUFED5"
    for i in range(2):
        for k in range(6):
            _png(test_dir / f"{i:03d}_{k}.png", RNG.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    (test_dir / "001_1.png").write_bytes((test_dir / "001_0.png").read_bytes())
    (tmp_path / "out").mkdir()
    with caplog.at_level(logging.WARNING):
        ds = build("cufed5", {"kind": "cufed5", "test_dir": str(test_dir), "groups": 2}, tmp_path / "out", 4)
    assert list(ds.groups[0].refs) == ["L1", "L2", "L3", "L4", "L5"]
    assert list(ds.groups[1].refs) == ["L2", "L3", "L4", "L5"] and ds.has_levels
    assert f"{test_dir / '001_1.png'}: reference 'L1' of test image '001' is a copy of its HR" in caplog.text


# ----------------------------------------------------------------------------- 4. TTSR file names


def _released_ttsr(path: Path) -> Path:
    from refsr.models.ttsr import TTSR

    torch.manual_seed(0)
    torch.save(TTSR(n_blocks=[1, 1, 1, 1], n_feats=8, res_scale=1.0).state_dict(), path)
    return path


def test_case4_ttsr_file_not_named_as_released_needs_model(tmp_path, capsys):
    from refsr.models.importers import import_weights
    from refsr.models.importers.ttsr_official import model_of

    assert model_of(Path("TTSR.pt")) == "ttsr" and model_of(Path("ttsr-REC.pth")) == "ttsr_rec"
    for name in ("TTSR_direct.pt", "correct.pt", "record.pt", "TTSR-rec-v2.pt"):
        with pytest.raises(RefsrError, match=r"name it with --model ttsr\|ttsr_rec"):
            model_of(Path(name))
    src = _released_ttsr(tmp_path / "TTSR_direct.pt")
    with pytest.raises(RefsrError, match="not a released TTSR file name"):
        import_weights("ttsr-official", src, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    written = import_weights("ttsr-official", src, tmp_path / "out", model="ttsr")
    assert set(written) == {"ttsr"}
    with pytest.raises(RefsrError, match="--model applies only to ttsr-official"):
        import_weights("refsr", src, tmp_path / "out", model="ttsr")

    out = tmp_path / "cli"
    assert main(["import-weights", "ttsr-official", str(src), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--model ttsr|ttsr_rec" in err[0] and "TTSR_direct.pt" in err[0]
    assert main(["import-weights", "ttsr-official", str(src), "--out", str(out), "--model", "ttsr_rec"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"ttsr_rec"}
    assert main(["import-weights", "ttsr-official", str(src), "--out", str(out), "--model", "rec"]) == 1
    assert "not 'rec'" in capsys.readouterr().err

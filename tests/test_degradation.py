"""The realistic second-order degradation (refsr.data.degradation): seeded, recorded, selectable."""

from __future__ import annotations

import json

import numpy as np
import pytest
import skimage.data

from refsr.core.config import defaults, validate
from refsr.data.degradation import gaussian_kernel, realistic
from refsr.data.resize import degrade

HR = np.ascontiguousarray(skimage.data.astronaut()[100:196, 150:246])
P = defaults("degradation.realistic")


def test_same_seed_and_name_same_lr_and_draws():
    a, da = realistic(HR, 4, P, 0, "test/x")
    b, db = realistic(HR, 4, P, 0, "test/x")
    assert np.array_equal(a, b) and da == db
    assert a.shape == (24, 24, 3) and a.dtype == np.uint8
    c, dc = realistic(HR, 4, P, 1, "test/x")
    d, _ = realistic(HR, 4, P, 0, "test/y")
    assert not np.array_equal(a, c) and not np.array_equal(a, d)
    assert set(da) == {"round1", "round2", "jpeg_quality"}
    assert all(30 <= q <= 95 for q in da["jpeg_quality"])


def test_realistic_is_further_from_bicubic_than_bicubic_is_from_itself():
    lr, _ = realistic(HR, 4, P, 0, "test/x")
    bic = degrade(HR, 4)[1]
    assert np.abs(lr.astype(float) - bic).mean() > 2.0
    # No noise, no blur, no resize range, top JPEG quality: close to a plain bicubic resize.
    mild = {**P, "sigma": [0.01, 0.01], "sigma2": [0.01, 0.01], "resize": [1, 1], "resize2": [1, 1],
            "gaussian_sigma": [0, 0], "poisson_prob": 0.0, "jpeg_quality": [100, 100]}
    lr_mild, _ = realistic(HR, 4, mild, 0, "test/x")
    assert np.abs(lr_mild.astype(float) - bic).mean() < np.abs(lr.astype(float) - bic).mean()


def test_kernel_is_normalised_and_anisotropic():
    k = gaussian_kernel(21, 3.0, 1.0, 0.0)
    assert k.sum() == pytest.approx(1.0)
    assert k[10, :].std() > k[:, 10].std()  # wider along x


def test_write_lr_records_parameters_and_draws(tmp_path):
    from refsr.core.imageio import read_image, write_image
    from refsr.data.layout import Dataset, TestGroup, TrainPair
    from refsr.data.lr import lr_path, write_lr

    write_image(tmp_path / "hr.png", HR)
    ds = Dataset(name="d", root=tmp_path)
    ds.groups.append(TestGroup("g", hr=tmp_path / "hr.png"))
    ds.train.append(TrainPair("p", tmp_path / "hr.png", tmp_path / "hr.png"))
    cfg = validate({"degradation": {"test": "realistic"}})["degradation"]
    write_lr(ds, tmp_path / "lr", 4, "matlab", cfg)
    rec = json.loads((tmp_path / "lr" / "degradation.json").read_text())
    assert rec["test"] == "realistic" and rec["train"] == "bicubic"
    assert rec["realistic"] == P and list(rec["draws"]) == ["test/g"]
    assert np.array_equal(read_image(lr_path(tmp_path / "lr", "train", "p")), degrade(HR, 4)[1])
    assert np.array_equal(read_image(lr_path(tmp_path / "lr", "test", "g")), realistic(HR, 4, P, 0, "test/g")[0])

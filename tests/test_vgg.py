"""VGG19 feature extractor: shapes, normalisation, weight resolution and clear errors."""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from refsr.core.errors import RefsrError
from refsr.features import vgg as V

SHARED = Path(__file__).resolve().parents[2] / "shared" / "weights" / "vgg19_imagenet_conv1_1-conv3_1.pth"


@pytest.fixture(autouse=True)
def weights_env(monkeypatch) -> Path:
    """Point REFSR_VGG19_WEIGHTS at the shared partial weights unless the user set it."""
    if not SHARED.is_file():
        pytest.skip(f"shared VGG19 weights not available at {SHARED}")
    path = Path(os.environ.get(V.ENV_VAR) or SHARED)
    monkeypatch.setenv(V.ENV_VAR, str(path))
    return path


@pytest.fixture
def partial_state() -> dict:
    return torch.load(SHARED, map_location="cpu", weights_only=True) if SHARED.is_file() else {}


def test_shapes_frozen_and_provenance(weights_env):
    model = V.load_vgg19(("relu3_1", "relu1_1", "relu2_1"))
    assert model.weights_source == str(weights_env)
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    assert len(model.features) == V.LAYERS["relu3_1"] + 1  # truncated at the deepest layer
    out = model(torch.rand(2, 3, 64, 48))
    assert list(out) == ["relu1_1", "relu2_1", "relu3_1"]
    assert out["relu1_1"].shape == (2, 64, 64, 48)
    assert out["relu2_1"].shape == (2, 128, 32, 24)
    assert out["relu3_1"].shape == (2, 256, 16, 12)
    model.train()
    assert not model.training
    assert V.load_vgg19(("relu1_1", "relu2_1", "relu3_1")) is model  # cached


def test_normalisation_applied(monkeypatch, partial_state):
    monkeypatch.setenv(V.ENV_VAR, str(SHARED))
    model = V.load_vgg19(("relu1_1",))
    x = torch.rand(1, 3, 20, 24)
    mean = torch.tensor(V.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(V.IMAGENET_STD).view(1, 3, 1, 1)
    w, b = partial_state["0.weight"], partial_state["0.bias"]
    expected = F.relu(F.conv2d((x - mean) / std, w, b, padding=1))
    got = model(x)["relu1_1"]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got, F.relu(F.conv2d(x, w, b, padding=1)), atol=1e-3)


def test_partial_weights_refuse_deeper_layers(monkeypatch):
    monkeypatch.setenv(V.ENV_VAR, str(SHARED))
    with pytest.raises(RefsrError) as err:
        V.load_vgg19(("relu1_1", "relu5_1"))
    msg = str(err.value)
    assert str(SHARED) in msg and "\n" not in msg
    assert "relu5_1 needs conv3_2..conv5_1 (features.12..28)" in msg


def test_full_torchvision_keys_accepted(tmp_path, monkeypatch, partial_state):
    full = {f"features.{k}": v for k, v in partial_state.items()}
    full["classifier.0.weight"] = torch.zeros(2, 2)
    path = tmp_path / "vgg19_full.pth"
    torch.save(full, path)
    monkeypatch.delenv(V.ENV_VAR)
    model = V.load_vgg19(("relu2_1",), weights=path)
    assert model.weights_source == str(path)
    ref = V.load_vgg19(("relu2_1",), weights=SHARED)
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(model(x)["relu2_1"], ref(x)["relu2_1"])


def test_env_var_overrides_argument(weights_env):
    model = V.load_vgg19(("relu1_1",), weights="/nonexistent/vgg.pth")
    assert model.weights_source == str(weights_env)


@pytest.mark.parametrize("content", [b"not a torch file at all", b""])
def test_corrupt_or_missing_file(tmp_path, monkeypatch, content):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(content)
    monkeypatch.setenv(V.ENV_VAR, str(bad))
    with pytest.raises(RefsrError, match="broken.pth"):
        V.load_vgg19()
    monkeypatch.setenv(V.ENV_VAR, str(tmp_path / "missing.pth"))
    with pytest.raises(RefsrError, match="missing.pth.*not found"):
        V.load_vgg19()


def test_wrong_shapes_and_non_dict(tmp_path, monkeypatch, partial_state):
    state = dict(partial_state)
    state["5.weight"] = torch.zeros(3, 3, 3, 3)
    path = tmp_path / "shapes.pth"
    torch.save(state, path)
    monkeypatch.setenv(V.ENV_VAR, str(path))
    with pytest.raises(RefsrError, match=r"shapes\.pth.*5\.weight"):
        V.load_vgg19()
    torch.save([1, 2, 3], path)
    with pytest.raises(RefsrError, match="not a state dict"):
        V.load_vgg19()


def test_offline_download_fails_clearly(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.delenv(V.ENV_VAR)
    monkeypatch.setattr(V, "_CACHE", {})
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(RefsrError) as err:
        V.load_vgg19()
    msg = str(err.value)
    assert "could not be downloaded" in msg and V.ENV_VAR in msg and "internet" in msg


def test_unknown_layer():
    with pytest.raises(RefsrError, match="layers"):
        V.load_vgg19(("relu9_9",))

"""The official recipe's VGG19: MatConvNet's imagenet-vgg-verydeep-19.mat read as the released
code reads it, the fallback to torchvision's weights in MatConvNet's units, the MD5-checked
download. The .mat is written here with the real file's structure (a 1 x 43 cell array of
layer structs, conv weights as a 1 x 2 cell of kernel and bias, a meta struct); its first five
convolutions are torchvision's offline weights, the deeper ones zeros of the real shapes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from refsr.cli import main as cli
from refsr.core.errors import RefsrError
from refsr.features import matconvnet as M
from refsr.features import weights
from refsr.features.vgg import CONVS, VGGFeatures, load_vgg19

FC = (("fc6", 7, 512, 4096), ("fc7", 1, 4096, 4096), ("fc8", 1, 4096, 1000))


def _layer(name: str, kind: str, **fields) -> dict:
    return {"name": name, "type": kind, **fields}


def write_mat(path: Path, state: dict, transform=None) -> Path:
    """A MatConvNet-structured VGG19 file; conv kernels stored [W, H, in, out] as the released
    vgg19.py reads them. ``transform(layers)`` may damage the layer list."""
    convs = {name: (idx, cin, cout) for idx, name, cin, cout in CONVS}
    layers = []
    for name in M.LAYER_NAMES:
        if name.startswith("conv"):
            idx, cin, cout = convs[name]
            if f"{idx}.weight" in state:
                oihw = state[f"{idx}.weight"].numpy()
                kernel = oihw.transpose(3, 2, 1, 0)  # OIHW -> W H I O
                bias = state[f"{idx}.bias"].numpy().reshape(-1, 1)
            else:
                kernel, bias = np.zeros((3, 3, cin, cout), np.float32), np.zeros((cout, 1), np.float32)
            w = np.empty((1, 2), dtype=object)
            w[0, 0], w[0, 1] = kernel.astype(np.float32), bias.astype(np.float32)
            layers.append(_layer(name, "conv", weights=w, size=np.array([3, 3, cin, cout], float),
                                 pad=np.ones(4), stride=np.ones(2), precious=0, dilate=1, opts=np.empty((0, 0))))
        elif name.startswith("relu"):
            layers.append(_layer(name, "relu", leak=0, precious=0))
        else:
            layers.append(_layer(name, "pool", method="max", pool=np.array([2.0, 2.0]), stride=np.array([2.0, 2.0]),
                                 pad=np.zeros(4), precious=0, opts=np.empty((0, 0))))
    for name, k, cin, cout in FC:  # the classifier: present in the real file, never read (small here)
        w = np.empty((1, 2), dtype=object)
        w[0, 0], w[0, 1] = np.zeros((1, 1, 1, 1), np.float32), np.zeros((1, 1), np.float32)
        layers += [_layer(name, "conv", weights=w, size=np.array([k, k, cin, cout], float), pad=np.zeros(4),
                          stride=np.ones(2), precious=0, dilate=1, opts=np.empty((0, 0)))]
        if name != "fc8":
            layers.append(_layer(name.replace("fc", "relu"), "relu", leak=0, precious=0))
    layers.append(_layer("prob", "softmax", precious=0))
    assert len(layers) == 43
    if transform is not None:
        layers = transform(layers)
    cell = np.empty((1, len(layers)), dtype=object)
    for i, layer in enumerate(layers):
        cell[0, i] = layer
    meta = {"inputs": {"name": "input", "size": np.array([224.0, 224, 3, 10])},
            "normalization": {"imageSize": np.array([224.0, 224, 3]),
                              "averageImage": np.array(M.MEAN_PIXEL).reshape(1, 1, 3), "interpolation": "bilinear",
                              "border": np.array([32.0, 32]), "cropSize": np.array([0.875, 0.875])}}
    scipy.io.savemat(path, {"layers": cell, "meta": meta}, do_compression=True)
    return path


@pytest.fixture(scope="module")
def tv_state(vgg_weights) -> dict:
    state = torch.load(vgg_weights, map_location="cpu", weights_only=True)
    return {k.removeprefix("features."): v for k, v in state.items()}


@pytest.fixture(scope="module")
def mat_file(tmp_path_factory, tv_state) -> Path:
    return write_mat(tmp_path_factory.mktemp("mat") / M.MAT_NAME, tv_state)


@pytest.fixture(autouse=True)
def _clean(monkeypatch, tmp_path):
    monkeypatch.delenv(M.ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    M._CACHE.clear()
    yield
    M._CACHE.clear()


def test_reads_the_file_as_the_released_code_does(mat_file, tv_state):
    vgg = M.load_matconvnet_vgg19(mat_file, ("relu1_1", "relu2_1", "relu3_1"))
    assert isinstance(vgg, M.MatConvNetVGG19) and "MatConvNet" in vgg.weights_source
    x = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    out = vgg(x)
    # The same torchvision weights with the MatConvNet input convention set by hand: equal
    # features prove the transposition and the layer order.
    ref = VGGFeatures(("relu1_1", "relu2_1", "relu3_1"))
    ref.features.load_state_dict({k: v for k, v in tv_state.items() if int(k.split(".")[0]) <= 10})
    ref.mean.copy_(torch.tensor(M.MEAN_PIXEL).view(1, 3, 1, 1) / 255)
    ref.std.fill_(1 / 255)
    expected = ref(x)
    for layer in ("relu1_1", "relu2_1", "relu3_1"):
        torch.testing.assert_close(out[layer], expected[layer], rtol=1e-4, atol=1e-3)
    # relu1_1 from the file's raw arrays by hand: [W, H, in, out] kernels on 255 x - mean.
    raw = scipy.io.loadmat(mat_file)["layers"][0][0][0][0]["weights"][0]
    k, b = raw[0].transpose(1, 0, 2, 3), raw[1].reshape(-1)
    img = x[0].permute(1, 2, 0).numpy() * 255 - np.array(M.MEAN_PIXEL)
    pad = np.pad(img, ((1, 1), (1, 1), (0, 0)))
    conv = sum(np.einsum("hwc,cd->hwd", pad[dy:dy + 20, dx:dx + 24], k[dy, dx]) for dy in range(3) for dx in range(3))
    np.testing.assert_allclose(out["relu1_1"][0].permute(1, 2, 0).numpy(), np.maximum(conv + b, 0), rtol=1e-4, atol=1e-3)


def test_deep_layers_load_from_the_full_structure(mat_file):
    vgg = M.load_matconvnet_vgg19(mat_file, ("relu5_1",))
    assert vgg(torch.rand(1, 3, 32, 32))["relu5_1"].shape == (1, 512, 2, 2)


@pytest.mark.parametrize("case", ["renamed", "misshaped", "short", "no_weights"])
def test_bad_files_name_the_file_and_the_layer(tmp_path, tv_state, case):
    def damage(layers):
        if case == "renamed":
            layers[5] = {**layers[5], "name": "conv9_9"}
        elif case == "misshaped":
            w = np.empty((1, 2), dtype=object)
            w[0, 0], w[0, 1] = np.zeros((3, 3, 64, 65), np.float32), np.zeros((65, 1), np.float32)
            layers[7] = {**layers[7], "weights": w}
        elif case == "short":
            layers = layers[:8]
        else:
            layers[0] = {k: v for k, v in layers[0].items() if k != "weights"}
        return layers

    path = write_mat(tmp_path / "bad.mat", tv_state, damage)
    needle = {"renamed": "layers[5] is 'conv9_9', expected conv2_1",
              "misshaped": "conv2_2 (layers[7]) kernel has shape (3, 3, 64, 65), expected (3, 3, 128, 128)",
              "short": "has 8 layers; conv3_1 is layers[10]",
              "no_weights": "layers[0] (conv1_1) has no field 'weights'"}[case]
    with pytest.raises(RefsrError) as err:
        M.load_matconvnet_vgg19(path, ("relu3_1",))
    assert needle in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_not_a_matconvnet_file(tmp_path):
    (tmp_path / "x.mat").write_bytes(b"garbage")
    with pytest.raises(RefsrError, match="cannot read it as a MATLAB file"):
        M.load_matconvnet_vgg19(tmp_path / "x.mat")
    scipy.io.savemat(tmp_path / "y.mat", {"net": np.zeros(3)})
    with pytest.raises(RefsrError, match="has no 'layers' array"):
        M.load_matconvnet_vgg19(tmp_path / "y.mat")
    with pytest.raises(RefsrError, match="not found"):
        M.load_matconvnet_vgg19(tmp_path / "none.mat")


def test_resolution_order_and_the_torchvision_fallback(mat_file, monkeypatch, caplog, vgg_weights):
    assert M.resolve_mat(None)[0] is None
    fallback = M.load_official_vgg19(("relu3_1",))
    assert isinstance(fallback, M.TorchvisionInMatConvNetUnits) and "no imagenet-vgg-verydeep-19.mat" in fallback.weights_source
    assert "using torchvision's VGG19 weights in MatConvNet's units" in caplog.text
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(fallback(x)["relu3_1"], load_vgg19(("relu3_1",))(x)["relu3_1"] * M.TORCHVISION_SCALE)
    assert abs(M.TORCHVISION_SCALE - 255 * np.mean((0.229, 0.224, 0.225))) < 1e-9
    assert "torchvision VGG19" in M.official_vgg_provenance()
    # config path, then the environment variable over it; the hub cache when neither is set
    assert M.resolve_mat(mat_file) == (mat_file, "from config key official.vgg19_mat")
    monkeypatch.setenv(M.ENV_VAR, str(mat_file))
    assert M.resolve_mat("other.mat")[0] == mat_file
    assert isinstance(M.load_official_vgg19(("relu1_1",)), M.MatConvNetVGG19)
    monkeypatch.delenv(M.ENV_VAR)
    cached = M.default_mat_path()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(mat_file.read_bytes())
    assert M.resolve_mat(None) == (cached, "from the torch hub cache")
    assert M.official_vgg_provenance().startswith("MatConvNet imagenet-vgg-verydeep-19.mat")
    with pytest.raises(RefsrError, match="not found"):
        M.load_official_vgg19(("relu1_1",), mat=mat_file.parent / "missing.mat")  # an explicit path must exist


def test_download_is_md5_checked_and_atomic(monkeypatch, tmp_path, capsys):
    payload = b"pretend this is the 510 MB file"

    def fake(url, dst, hash_prefix=None, progress=True):
        assert url.endswith(M.MAT_NAME) and hash_prefix is None
        Path(dst).write_bytes(payload)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake)
    assert cli(["download-weights", "--quiet", "--only", "vgg19_matconvnet"]) == 1
    err = capsys.readouterr().err.strip()
    assert "expected 106118b7cf60435e6d8e04f6a6dc3657; not kept" in err and "\n" not in err
    assert not any(M.default_mat_path().parent.iterdir())
    monkeypatch.setitem(weights.MD5, "vgg19_matconvnet", hashlib.md5(payload).hexdigest())
    assert cli(["download-weights", "--quiet", "--only", "vgg19_matconvnet"]) == 0
    path = Path(json.loads(capsys.readouterr().out)["vgg19_matconvnet"])
    assert path == M.default_mat_path() and path.read_bytes() == payload


def test_needed_asks_for_the_mat_under_the_official_recipe():
    assert "vgg19_matconvnet" in weights.needed({"recipe": "official", "official": {"vgg19_mat": None}})
    assert "vgg19_matconvnet" not in weights.needed({"recipe": "official", "official": {"vgg19_mat": "v.mat"}})
    assert "vgg19_matconvnet" not in weights.needed({"recipe": "refsr"})

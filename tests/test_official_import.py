"""`refsr import-weights srntt-official`: the released TensorLayer .npz files → official checkpoints.

Checked two ways: against TensorFlow's own outputs of the released graph
(``../shared/fixtures/srntt-official-tf/``, skipped when absent), and against an independent
NumPy implementation of the TensorFlow ops (NHWC convolution with 'SAME' padding and HWIO
kernels, ``depth_to_space``, batch norm in inference mode, ReLU, tanh) on synthetic files this
test writes in the released layout. Bad files: one line naming the file and the parameter.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from refsr.cli import main
from refsr.core.errors import RefsrError
from refsr.models.checkpoint import load_checkpoint, save_checkpoint
from refsr.models.importers import import_weights

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "srntt-official-tf"
MAP_CH = {"small": 256, "medium": 128, "large": 64}
EPS = 1e-5


# ----------------------------------------------------------------------------- the released layout
# Written here from SRNTT/model.py (creation order of the TensorLayer variables), independently of
# refsr.models.importers.srntt_official.


def _conv(name, k, cin, cout, bias):
    out = [(f"{name}/W_conv2d", (k, k, cin, cout))]
    return out + ([(f"{name}/b_conv2d", (cout,))] if bias else [])


def _bn(name, c):
    return [(f"{name}/{v}", (c,)) for v in ("beta", "gamma", "moving_mean", "moving_variance")]


def upscale_vars(nb, n):
    s = "content_extractor/n64s1"
    v = _conv(f"{s}/c", 3, 3, n, True)
    for i in range(nb):
        v += _conv(f"{s}/c1/{i}", 3, n, n, False) + _bn(f"{s}/b1/{i}", n)
        v += _conv(f"{s}/c2/{i}", 3, n, n, False) + _bn(f"{s}/b2/{i}", n)
    v += _conv(f"{s}/c/m", 3, n, n, False) + _bn(f"{s}/b/m", n)
    v += _conv("content_extractor/n256s1/1", 3, n, 4 * n, True) + _conv("content_extractor/n256s1/2", 3, n, 4 * n, True)
    return v + _conv("content_extractor/out", 1, n, 3, True)


def transfer_vars(num_res_blocks, n):
    v = []
    for stage, nb in zip(MAP_CH, (num_res_blocks, num_res_blocks // 2, num_res_blocks // 4), strict=True):
        t = f"texture_transfer/{stage}"
        v += _conv(f"{t}/conv1", 3, n + MAP_CH[stage], n, True)
        for i in range(nb):
            v += _conv(f"{t}/resblock_{i}/conv1", 3, n, n, False) + _bn(f"{t}/resblock_{i}/bn1", n)
            v += _conv(f"{t}/resblock_{i}/conv2", 3, n, n, False) + _bn(f"{t}/resblock_{i}/bn2", n)
        v += _conv(f"{t}/conv2", 3, n, n, False) + _bn(f"{t}/bn2", n)
        v += _conv(f"{t}/conv3", 3, n, n // 2 if stage == "large" else 4 * n, True)
    return v + _conv("texture_transfer/out", 1, n // 2, 3, True)


def draw(variables, rng):
    """Weights drawn so that the outputs are O(0.1-1) (like the fixture's)."""
    out = {}
    for name, shape in variables:
        if name.endswith("W_conv2d"):
            a = rng.normal(0, 0.75 / np.sqrt(np.prod(shape[:3])), shape)
        elif name.endswith("moving_variance"):
            a = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("gamma"):
            a = rng.normal(1, 0.02, shape)
        else:
            a = rng.normal(0, 0.02, shape)
        out[name] = a.astype(np.float32)
    return out


def save_npz(path, variables, values):
    """TensorLayer's files.save_npz: one key 'params', an object array in creation order."""
    arr = np.empty(len(variables), dtype=object)
    for i, (name, _) in enumerate(variables):
        arr[i] = values[name]
    np.savez(path, params=arr)


# ----------------------------------------------------------------------------- NumPy TensorFlow ops


def conv_same(x, w, b=None):
    """tf.nn.conv2d NHWC, HWIO kernel, stride 1, 'SAME' (odd kernel: symmetric zero padding)."""
    k = w.shape[0]
    p = k // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    n, h, wd, _ = x.shape
    out = np.zeros((n, h, wd, w.shape[3]), dtype=np.float64)
    for dy in range(k):
        for dx in range(k):
            out += np.einsum("nhwc,cd->nhwd", xp[:, dy:dy + h, dx:dx + wd, :], w[dy, dx].astype(np.float64))
    return out if b is None else out + b


def depth_to_space(x, r=2):
    """tf.nn.depth_to_space (DCR): out[h*r+i, w*r+j, c] = in[h, w, (i*r+j)*C + c]."""
    n, h, w, c4 = x.shape
    c = c4 // (r * r)
    return x.reshape(n, h, w, r, r, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h * r, w * r, c)


def bn(x, v, name):
    g, b = v[f"{name}/gamma"], v[f"{name}/beta"]
    m, var = v[f"{name}/moving_mean"], v[f"{name}/moving_variance"]
    return (x - m) / np.sqrt(var + 1e-5) * g + b


def relu(x):
    return np.maximum(x, 0)


def np_content(x, v, nb):
    s = "content_extractor/n64s1"
    h = relu(conv_same(x, v[f"{s}/c/W_conv2d"], v[f"{s}/c/b_conv2d"]))
    y = h
    for i in range(nb):
        t = relu(bn(conv_same(y, v[f"{s}/c1/{i}/W_conv2d"]), v, f"{s}/b1/{i}"))
        y = y + bn(conv_same(t, v[f"{s}/c2/{i}/W_conv2d"]), v, f"{s}/b2/{i}")
    return h + bn(conv_same(y, v[f"{s}/c/m/W_conv2d"]), v, f"{s}/b/m")


def np_upscale(x, v, nb):
    y = np_content(x, v, nb)
    for k in (1, 2):
        name = f"content_extractor/n256s1/{k}"
        y = relu(depth_to_space(conv_same(y, v[f"{name}/W_conv2d"], v[f"{name}/b_conv2d"])))
    return np.tanh(conv_same(y, v["content_extractor/out/W_conv2d"], v["content_extractor/out/b_conv2d"]))


def np_srntt(x, maps, vu, vt, nb, num_res_blocks):
    y = np_content(x, vu, nb)
    for (stage, m), n_blocks in zip(zip(MAP_CH, maps, strict=True),
                                    (num_res_blocks, num_res_blocks // 2, num_res_blocks // 4), strict=True):
        t = f"texture_transfer/{stage}"
        z = relu(conv_same(np.concatenate([y, m], -1), vt[f"{t}/conv1/W_conv2d"], vt[f"{t}/conv1/b_conv2d"]))
        for i in range(n_blocks):
            r = relu(bn(conv_same(z, vt[f"{t}/resblock_{i}/conv1/W_conv2d"]), vt, f"{t}/resblock_{i}/bn1"))
            z = z + bn(conv_same(r, vt[f"{t}/resblock_{i}/conv2/W_conv2d"]), vt, f"{t}/resblock_{i}/bn2")
        y = y + bn(conv_same(z, vt[f"{t}/conv2/W_conv2d"]), vt, f"{t}/bn2")
        y = conv_same(y, vt[f"{t}/conv3/W_conv2d"], vt[f"{t}/conv3/b_conv2d"])
        if stage != "large":
            y = relu(depth_to_space(y))
    return np.tanh(conv_same(y, vt["texture_transfer/out/W_conv2d"], vt["texture_transfer/out/b_conv2d"]))


# ----------------------------------------------------------------------------- helpers


def nchw(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(0, 3, 1, 2)


def nhwc(t):
    return t.detach().permute(0, 2, 3, 1).numpy()


def run_raw(ckpt, x, maps=None):
    model, _ = load_checkpoint(ckpt)
    with torch.no_grad():
        if maps is None:
            return nhwc(model.raw(nchw(x)))
        return nhwc(model.raw(nchw(x), {k: nchw(m) for k, m in zip(("relu3_1", "relu2_1", "relu1_1"), maps, strict=True)}))


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A synthetic released folder: 2 content blocks, num_res_blocks 4 (4/2/1), 8 channels."""
    root = tmp_path_factory.mktemp("released")
    rng = np.random.default_rng(3)
    nb, nrb, n = 2, 4, 8
    vu, vt, vi = draw(upscale_vars(nb, n), rng), draw(transfer_vars(nrb, n), rng), draw(transfer_vars(nrb, n), rng)
    save_npz(root / "upscale.npz", upscale_vars(nb, n), vu)
    save_npz(root / "srntt.npz", transfer_vars(nrb, n), vt)
    save_npz(root / "srntt_init.npz", transfer_vars(nrb, n), vi)
    x = rng.uniform(-1, 1, (2, 5, 7, 3))
    maps = [np.abs(rng.normal(0, 1, (2, 5 * s, 7 * s, c))) for s, c in ((1, 256), (2, 128), (4, 64))]
    return dict(root=root, vu=vu, vt=vt, vi=vi, nb=nb, nrb=nrb, x=x, maps=maps)


# ----------------------------------------------------------------------------- tests


def test_numpy_reference_on_a_synthetic_release(released, tmp_path, capsys):
    r = released
    assert main(["import-weights", "srntt-official", str(r["root"]), "--out", str(tmp_path / "out")]) == 0
    written = json.loads(capsys.readouterr().out)
    assert sorted(written) == ["srntt", "srntt_l2", "srresnet"]
    for name, path in written.items():
        _, ckpt = load_checkpoint(path, expected=name)
        assert ckpt["recipe"] == "official" and ckpt["source"] == "srntt-official"
    x, maps = r["x"], r["maps"]
    np.testing.assert_allclose(run_raw(written["srresnet"], x), np_upscale(x, r["vu"], r["nb"]), atol=EPS, rtol=0)
    for name, vt in (("srntt", r["vt"]), ("srntt_l2", r["vi"])):
        expected = np_srntt(x, maps, r["vu"], vt, r["nb"], r["nrb"])
        np.testing.assert_allclose(run_raw(written[name], x, maps), expected, atol=EPS, rtol=0)
    # The pipeline's interface is the same map on [0, 1] images.
    model, _ = load_checkpoint(written["srresnet"])
    with torch.no_grad():
        out = nhwc(model(nchw((x + 1) / 2)))
    np.testing.assert_allclose(out, (np_upscale(x, r["vu"], r["nb"]) + 1) / 2, atol=EPS, rtol=0)


def test_depth_to_space_is_not_pixel_shuffle():
    """The channel orders differ; importing without the permutation would be wrong."""
    x = np.arange(2 * 3 * 8, dtype=np.float32).reshape(1, 2, 3, 8)
    ps = torch.nn.functional.pixel_shuffle(nchw(x), 2)
    assert not np.allclose(nhwc(ps), depth_to_space(x))
    perm = [k * 2 + c for c in range(2) for k in range(4)]  # pytorch channel 4c+k <- tf k*C+c
    np.testing.assert_array_equal(nhwc(torch.nn.functional.pixel_shuffle(nchw(x[..., perm]), 2)), depth_to_space(x))


@pytest.mark.skipif(not FIXTURE.is_dir(), reason=f"TensorFlow reference outputs not found at {FIXTURE}")
def test_matches_tensorflow_outputs(tmp_path):
    written = import_weights("srntt-official", FIXTURE, tmp_path)
    assert sorted(written) == ["srntt", "srresnet"]  # the fixture has no srntt_init.npz
    x = np.load(FIXTURE / "input.npy")
    maps = [np.load(FIXTURE / f"maps_{i}.npy") for i in range(3)]
    np.testing.assert_allclose(run_raw(written["srresnet"], x), np.load(FIXTURE / "out_upscale.npy"), atol=EPS, rtol=0)
    np.testing.assert_allclose(run_raw(written["srntt"], x, maps), np.load(FIXTURE / "out_srntt.npy"), atol=EPS, rtol=0)
    _, ckpt = load_checkpoint(written["srntt"])
    assert ckpt["arch_cfg"] == {"n_blocks": 16, "n_feats": 64, "n_blocks_transfer": [16, 8, 4]}


def _one_line(argv, capsys, *needles):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


def _broken(released, tmp_path, edit, name="upscale.npz"):
    src = tmp_path / "src"
    src.mkdir()
    for f in released["root"].iterdir():
        (src / f.name).write_bytes(f.read_bytes())
    arrays = list(np.load(src / name, allow_pickle=True)["params"])
    arrays = edit(arrays)
    arr = np.empty(len(arrays), dtype=object)
    arr[:] = arrays
    np.savez(src / name, params=arr)
    return src


@pytest.mark.parametrize("case", ["missing", "misshaped", "extra"])
def test_bad_parameter_is_one_line_naming_file_and_parameter(released, tmp_path, capsys, case):
    edits = {"missing": lambda a: a[:-1],
             "misshaped": lambda a: a[:5] + [np.zeros((7,), np.float32)] + a[6:],
             "extra": lambda a: a + [np.zeros((3,), np.float32)]}
    src = _broken(released, tmp_path, edits[case])
    out = tmp_path / "out"
    needle = {"missing": "parameter 32 (content_extractor/out/b_conv2d, shape (3,)) is missing",
              "misshaped": "parameter 5 (content_extractor/n64s1/b1/0/moving_mean) has shape (7,), expected (8,)",
              "extra": "parameter 33 (shape (3,)) is not in the released layout"}[case]
    _one_line(["import-weights", "srntt-official", str(src), "--out", str(out)], capsys, "upscale.npz", needle)
    assert not out.exists() or not any(out.iterdir())


def test_bad_texture_file_names_it(released, tmp_path, capsys):
    src = _broken(released, tmp_path, lambda a: a[:1] + [a[1][:-1]] + a[2:], name="srntt.npz")
    _one_line(["import-weights", "srntt-official", str(src), "--out", str(tmp_path / "o")], capsys,
              "srntt.npz", "parameter 1 (texture_transfer/small/conv1/b_conv2d)")


def test_missing_or_foreign_files(released, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line(["import-weights", "srntt-official", str(empty), "--out", str(tmp_path / "o")], capsys,
              "upscale.npz", "not found")
    _one_line(["import-weights", "srntt-official", str(released["root"] / "upscale.npz"), "--out",
               str(tmp_path / "o")], capsys, "expected the released folder")
    (empty / "upscale.npz").write_bytes(b"not a zip file")
    _one_line(["import-weights", "srntt-official", str(empty), "--out", str(tmp_path / "o")], capsys,
              "upscale.npz", "cannot read the released weights")
    np.savez(empty / "upscale.npz", other=np.zeros(3))
    _one_line(["import-weights", "srntt-official", str(empty), "--out", str(tmp_path / "o")], capsys,
              "no 'params' array")


def test_pickled_code_is_refused(tmp_path):
    """The object array is unpickled with an allow-list: a file that would run code does not."""
    import io
    import pickle
    import zipfile

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    buf.write(pickle.dumps(Evil()))
    src = tmp_path / "src"
    src.mkdir()
    with zipfile.ZipFile(src / "upscale.npz", "w") as zf:
        zf.writestr("params.npy", buf.getvalue())
    with pytest.raises(RefsrError, match="builtins.print is not a NumPy array"):
        import_weights("srntt-official", src, tmp_path / "out")


def test_checkpoint_of_the_other_recipe_is_one_line(released, tmp_path, capsys):
    """An official SRResNet cannot start a refsr SRNTT-l2 (nor the reverse)."""
    from conftest import train_config

    from refsr.models.checkpoint import build_model
    from refsr.training.trainer import _initialise

    written = import_weights("srntt-official", released["root"], tmp_path / "imp")
    cfg = train_config("srntt_l2")
    model = build_model("srntt_l2", cfg.arch, recipe="refsr")
    with pytest.raises(RefsrError, match="recipe official, but srntt_l2 trains in recipe refsr"):
        _initialise(model, "srntt_l2", str(written["srresnet"]), "refsr")
    sizes = {"n_blocks": 1, "n_feats": 8, "residual_over_bicubic": True, "res_scale": 1.0}
    save_checkpoint(tmp_path / "refsr.pt", build_model("srresnet", sizes), "srresnet", sizes)
    official = build_model("srntt_l2", {"n_blocks": 1, "n_feats": 8, "n_blocks_transfer": [1, 1, 1]},
                           recipe="official")
    with pytest.raises(RefsrError, match="recipe refsr, but srntt_l2 trains in recipe official"):
        _initialise(official, "srntt_l2", str(tmp_path / "refsr.pt"), "official")

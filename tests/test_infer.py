"""Inference and ``refsr sr``: every model kind, odd sizes, tiling, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import small_checkpoint
from PIL import Image

from refsr.cli import main
from refsr.core.errors import RefsrError
from refsr.data.resize import upscale
from refsr.inference.resolver import SuperResolver
from refsr.models.checkpoint import build_model, save_checkpoint


def _ckpt(tmp_path, name, perturb=True):
    # perturbed: leave "exactly bicubic" so tiling differences would show
    return small_checkpoint(tmp_path, name, perturb)


@pytest.fixture
def images(tmp_path, rng):
    import skimage.data

    photo = skimage.data.astronaut()
    lr = photo[100:113:1, 200:217][:, :, :]  # 13 x 17, odd on both sides
    paths = {"lr": tmp_path / "lr.png", "ref": tmp_path / "ref.png", "gray": tmp_path / "gray.png",
             "rgba": tmp_path / "rgba.png", "tiny": tmp_path / "tiny.png"}
    Image.fromarray(lr).save(paths["lr"])
    Image.fromarray(photo[300:361, 100:171]).save(paths["ref"])  # another size than the output
    Image.fromarray(photo[300:361, 100:171, 0]).save(paths["gray"])
    Image.fromarray(np.dstack([photo[:40, :44], np.full((40, 44), 128, np.uint8)])).save(paths["rgba"])
    Image.fromarray(photo[:8, :8]).save(paths["tiny"])
    return paths


@pytest.mark.parametrize("model", ["bicubic", "srresnet", "srgan", "srntt_l2", "srntt"])
def test_sr_cli_odd_sizes(model, images, tmp_path, vgg_weights):
    ckpt = "bicubic" if model == "bicubic" else _ckpt(tmp_path, model)
    out = tmp_path / "sr.png"
    rc = main(["sr", "--lr", str(images["lr"]), "--ref", str(images["ref"]), "--ref", str(images["gray"]),
               "--checkpoint", ckpt, "--out", str(out)])
    assert rc == 0
    assert Image.open(out).size == (17 * 4, 13 * 4)


def test_bicubic_equals_matlab_upscale(images, tmp_path):
    out = tmp_path / "sr.png"
    assert main(["sr", "--lr", str(images["lr"]), "--checkpoint", "bicubic", "--out", str(out)]) == 0
    lr = np.asarray(Image.open(images["lr"]))
    assert np.array_equal(np.asarray(Image.open(out)), upscale(lr, 4))


@pytest.mark.parametrize("model", ["srresnet", "srntt"])
def test_tiling_matches_whole_image(model, tmp_path, vgg_weights):
    import skimage.data

    photo = skimage.data.chelsea()
    lr, ref = photo[40:77, 60:101], photo[30:130, 50:150]
    ckpt = _ckpt(tmp_path, model)
    whole = SuperResolver(ckpt, tile=0)(lr, [ref]).astype(int)
    tiled = SuperResolver(ckpt, tile=16, pad=12)(lr, [ref]).astype(int)
    assert whole.shape == tiled.shape == (37 * 4, 41 * 4, 3)
    assert np.abs(whole - tiled).max() <= 1


def test_rgba_reference_and_untrained_srntt_is_bicubic(images, tmp_path, vgg_weights):
    ckpt = _ckpt(tmp_path, "srntt", perturb=False)
    lr = np.asarray(Image.open(images["lr"]))
    from refsr.core.imageio import read_image

    sr = SuperResolver(ckpt)(lr, [read_image(images["rgba"])])
    # an untrained residual-over-bicubic SRNTT outputs the network's bicubic base exactly
    from refsr.core.imageio import from_tensor, to_tensor

    base = torch.nn.functional.interpolate(to_tensor(lr), scale_factor=4, mode="bicubic", align_corners=False)
    assert np.abs(sr.astype(int) - from_tensor(base).astype(int)).max() <= 1


@pytest.mark.parametrize("case", ["corrupt", "wrong_model", "tiny_ref", "missing_ref_for_srntt", "bad_lr"])
def test_sr_bad_input(case, images, tmp_path, capsys, vgg_weights):
    out = tmp_path / "sr.png"
    args = ["sr", "--lr", str(images["lr"]), "--out", str(out)]
    if case == "corrupt":
        bad = tmp_path / "bad.pt"
        bad.write_bytes(b"not a checkpoint")
        args += ["--checkpoint", str(bad)]
        needle = str(bad)
    elif case == "wrong_model":
        args += ["--checkpoint", _ckpt(tmp_path, "srresnet"), "--model", "srntt", "--ref", str(images["ref"])]
        needle = "srresnet"
    elif case == "tiny_ref":
        args += ["--checkpoint", _ckpt(tmp_path, "srntt"), "--ref", str(images["tiny"])]
        needle = str(images["tiny"])
    elif case == "missing_ref_for_srntt":
        args += ["--checkpoint", _ckpt(tmp_path, "srntt")]
        needle = "reference"
    else:
        (tmp_path / "lr_bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
        args = ["sr", "--lr", str(tmp_path / "lr_bad.png"), "--checkpoint", "bicubic", "--out", str(out)]
        needle = "lr_bad.png"
    assert main(args) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("refsr: error:") and needle in err[0], err
    assert not out.exists()
    assert not list(tmp_path.glob(".sr*"))


def test_srntt_requires_vgg_layers_it_can_load(tmp_path, monkeypatch, images):
    monkeypatch.setenv("REFSR_VGG19_WEIGHTS", str(tmp_path / "missing.pth"))
    with pytest.raises(RefsrError, match="missing.pth"):
        SuperResolver(_ckpt(tmp_path, "srntt"))


@pytest.mark.parametrize("model", ["srntt", "ttsr"])
def test_degrade_sr_model_matches_in_the_sr_domain(model, tmp_path, vgg_weights):
    """reference.degrade sr_model: with bicubic as the 'SISR model' the matching sees exactly
    bicubic LR↑ and Ref↓↑, so the output is the default one; a trained-like SISR network
    changes what is matched (and so the output), the transferred textures stay the reference's."""
    import skimage.data

    photo = skimage.data.chelsea()
    lr, ref = photo[40:64, 60:88], photo[120:220, 180:300]
    if model == "ttsr":
        torch.manual_seed(0)
        net = build_model("ttsr", {"n_blocks": [1, 1, 1, 1], "n_feats": 8, "res_scale": 1.0})
        ckpt = str(tmp_path / "ttsr.pt")
        save_checkpoint(ckpt, net, "ttsr", {"n_blocks": [1, 1, 1, 1], "n_feats": 8, "res_scale": 1.0})
    else:
        ckpt = _ckpt(tmp_path, model)
    plain = SuperResolver(ckpt, tile=0)(lr, [ref])
    via_bicubic = SuperResolver(ckpt, tile=0, matching_sisr=SuperResolver("bicubic"))(lr, [ref])
    assert np.array_equal(plain, via_bicubic)
    sisr = SuperResolver(_ckpt(tmp_path, "srresnet"), model="srresnet", tile=0)
    other = SuperResolver(ckpt, tile=0, matching_sisr=sisr)(lr, [ref])
    assert other.shape == plain.shape and not np.array_equal(other, plain)


def test_degrade_sr_model_needs_a_single_image_model(tmp_path, vgg_weights):
    ref_model = SuperResolver(_ckpt(tmp_path, "srntt_l2"), tile=0)
    with pytest.raises(RefsrError, match="reference.sisr_model"):
        SuperResolver(_ckpt(tmp_path, "srntt"), matching_sisr=ref_model)
    from refsr.core.config import validate
    from refsr.models import registry

    with pytest.raises(RefsrError, match="reference.sisr_model"):
        registry.check_config(validate({"reference": {"degrade": "sr_model", "sisr_model": "srntt"}}))


def test_sr_cli_match_sisr(images, tmp_path, vgg_weights, capsys):
    """refsr sr --match-sisr CKPT: SR-domain matching from the command line; a reference-based
    checkpoint there is a one-line error."""
    ckpt, sisr = _ckpt(tmp_path, "srntt"), _ckpt(tmp_path, "srresnet")
    base = ["sr", "--lr", str(images["lr"]), "--ref", str(images["ref"]), "--checkpoint", ckpt]
    assert main([*base, "--out", str(tmp_path / "a.png"), "--match-sisr", sisr]) == 0
    assert Image.open(tmp_path / "a.png").size == (17 * 4, 13 * 4)
    assert main([*base, "--out", str(tmp_path / "b.png"), "--match-sisr", ckpt]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    # the option and its file, not the config key (issue 28, case 11)
    assert len(err) == 1 and f"--match-sisr {ckpt}: must be a single-image model" in err[0]
    assert not (tmp_path / "b.png").exists()


@pytest.mark.parametrize("model", ["srresnet", "srntt", "ttsr_rec"])
def test_bf16_network_pass_is_close_and_auto_is_fp32_on_cpu(model, tmp_path, vgg_weights):
    # inference.dtype: bf16 autocast of the network pass only; auto = fp32 on the CPU, bit for bit
    import skimage.data

    photo = skimage.data.chelsea()
    lr, ref = photo[40:77, 60:101], photo[30:130, 50:150]
    ckpt = _ckpt(tmp_path, model)
    fp32, auto, bf16 = (SuperResolver(ckpt, model=model, tile=0, dtype=d)(lr, [ref]).astype(int)
                        for d in ("fp32", "auto", "bf16"))
    assert np.array_equal(fp32, auto)
    diff = np.abs(fp32 - bf16)
    assert diff.max() > 0  # the autocast is applied ...
    assert diff.max() <= 3 and (diff > 1).mean() < 0.01  # ... and changes little


def test_bad_dtype_is_one_line(tmp_path):
    with pytest.raises(RefsrError, match=r"^inference.dtype: must be one of auto, fp32, bf16, got 'fp16'$"):
        SuperResolver(_ckpt(tmp_path, "srresnet"), dtype="fp16")

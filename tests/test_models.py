"""Shapes, bicubic residual, content-extractor loading and checkpoints of the networks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import arch

from refsr.core.config import validate
from refsr.core.errors import RefsrError
from refsr.models import registry
from refsr.models.checkpoint import arch_config, build_model, load_checkpoint, save_checkpoint
from refsr.models.discriminator import Discriminator
from refsr.models.srntt import SRNTT
from refsr.models.srresnet import SRResNet, count_parameters

SMALL = arch(n_blocks=2, n_feats=8, n_blocks_transfer=[2, 1, 1])
H, W = 13, 17  # odd LR size


def swapped_maps(n: int, h: int, w: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "relu3_1": torch.rand(n, 256, h, w, generator=g),
        "relu2_1": torch.rand(n, 128, 2 * h, 2 * w, generator=g),
        "relu1_1": torch.rand(n, 64, 4 * h, 4 * w, generator=g),
    }


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_srresnet_shapes_on_odd_sizes():
    model = SRResNet(n_blocks=2, n_feats=8)
    lr = torch.rand(2, 3, H, W)
    assert model(lr).shape == (2, 3, 4 * H, 4 * W)
    assert model.features(lr).shape == (2, 8, H, W)


def test_srntt_shapes_on_odd_sizes():
    model = SRNTT(n_blocks=2, n_feats=8, n_blocks_transfer=1)
    lr = torch.rand(2, 3, H, W)
    assert model(lr, swapped_maps(2, H, W)).shape == (2, 3, 4 * H, 4 * W)
    assert model.features(lr).shape == (2, 8, H, W)


@pytest.mark.parametrize("size", [32, 45, 64])
def test_discriminator_one_score_per_image(size):
    disc = Discriminator(n_feats=8)
    assert disc(torch.rand(3, 3, size, size + 3)).shape == (3,)


def test_discriminator_rejects_tiny_input():
    with pytest.raises(RefsrError, match="smaller than 16"):
        Discriminator(n_feats=8)(torch.rand(1, 3, 8, 40))


def test_discriminator_has_no_batch_norm():
    assert not any(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in Discriminator().modules()
    )


def test_untrained_residual_models_return_bicubic():
    lr = torch.rand(1, 3, H, W)
    bicubic = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
    sisr = SRResNet(n_blocks=2, n_feats=8)
    refsr = SRNTT(n_blocks=2, n_feats=8, n_blocks_transfer=1)
    assert torch.equal(sisr.tail.weight, torch.zeros_like(sisr.tail.weight))
    with torch.no_grad():
        assert torch.allclose(sisr(lr), bicubic, atol=0, rtol=0)
        assert torch.allclose(refsr(lr, swapped_maps(1, H, W)), bicubic, atol=0, rtol=0)


def test_residual_over_bicubic_off_is_plain_network():
    model = SRResNet(n_blocks=1, n_feats=8, residual_over_bicubic=False)
    torch.nn.init.zeros_(model.tail.weight)
    torch.nn.init.zeros_(model.tail.bias)
    assert torch.count_nonzero(model(torch.rand(1, 3, 5, 6))) == 0


def test_srntt_rejects_bad_maps():
    model = SRNTT(n_blocks=1, n_feats=8, n_blocks_transfer=1)
    maps = swapped_maps(1, H, W)
    maps["relu2_1"] = maps["relu2_1"][..., :-1]
    with pytest.raises(RefsrError, match=r"maps\[relu2_1\]"):
        model(torch.rand(1, 3, H, W), maps)
    maps = swapped_maps(1, H, W)
    del maps["relu1_1"]
    with pytest.raises(RefsrError, match="missing"):
        model(torch.rand(1, 3, H, W), maps)


def test_content_extractor_loads_from_srresnet():
    sisr = SRResNet(n_blocks=3, n_feats=8)
    with torch.no_grad():  # make the SISR weights distinctive
        for p in sisr.parameters():
            p.add_(0.5)
    refsr = SRNTT(n_blocks=3, n_feats=8, n_blocks_transfer=1)
    refsr.load_content_extractor(sisr.state_dict())
    lr = torch.rand(1, 3, H, W)
    assert torch.equal(refsr.features(lr), sisr.features(lr))


@pytest.mark.parametrize("other", [{"n_blocks": 2, "n_feats": 8}, {"n_blocks": 3, "n_feats": 16}])
def test_content_extractor_size_mismatch_is_refsr_error(other):
    refsr = SRNTT(n_blocks=3, n_feats=8, n_blocks_transfer=1)
    with pytest.raises(RefsrError, match="content extractor") as err:
        refsr.load_content_extractor(SRResNet(**other).state_dict(), source="sisr.pt")
    assert str(err.value).startswith("sisr.pt: ") and "\n" not in str(err.value)


@pytest.mark.parametrize("name", registry.trainable())
def test_build_model(name):
    """Every trainable model builds from its own config section (TTSR: ``ttsr.arch``)."""
    spec = registry.get(name)
    cfg = SMALL if spec.arch_section == "arch" else registry.arch_config(name, validate({}))
    model = build_model(name, cfg)
    if spec.textures == "learned":
        from refsr.models.ttsr import TTSR

        assert isinstance(model, TTSR)
    else:
        sisr = spec.kind == registry.SINGLE_IMAGE
        assert isinstance(model, SRResNet if sisr else SRNTT)


def test_arch_config_takes_the_registered_keys():
    assert arch_config("srntt", arch())["n_blocks_transfer"] == [16, 8, 4]  # the schema's default
    assert "n_blocks_transfer" not in arch_config("srresnet", SMALL)
    with pytest.raises(RefsrError, match="unknown model"):
        build_model("edsr", SMALL)
    with pytest.raises(RefsrError, match="missing key"):
        build_model("srntt", {"n_blocks": 2})
    with pytest.raises(RefsrError, match="bicubic"):
        build_model("bicubic", SMALL)


@pytest.mark.parametrize("bad, key", [
    ({"nblocks": 3}, "config key arch"),
    ({"n_feats": 0}, "config key arch.n_feats"),
    ({"n_blocks": 0}, "config key arch.n_blocks"),
    ({"n_blocks": 2.5}, "config key arch.n_blocks"),
    ({"n_blocks_transfer": [1, 2]}, "config key arch.n_blocks_transfer"),
    ({"residual_over_bicubic": "yes"}, "config key arch.residual_over_bicubic"),
])
def test_arch_values_are_validated_once_by_the_schema(bad, key):
    with pytest.raises(RefsrError, match=key):
        validate({"arch": bad})


@pytest.mark.parametrize("name", ["srgan", "srntt"])
def test_checkpoint_round_trip(tmp_path, name):
    model = build_model(name, SMALL)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    path = tmp_path / "sub" / "checkpoint.pt"
    save_checkpoint(path, model, name, SMALL, extra={"step": 7, "optimizer": {"lr": 1e-4}})
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]  # no temporaries left
    loaded, ckpt = load_checkpoint(path, expected=name)
    assert ckpt["step"] == 7 and ckpt["model"] == name and ckpt["arch_cfg"]["n_feats"] == 8
    lr = torch.rand(1, 3, 6, 7)
    args = (lr, swapped_maps(1, 6, 7)) if registry.get(name).uses_reference else (lr,)
    with torch.no_grad():
        assert torch.equal(loaded(*args), model.eval()(*args))


def _one_line_error_naming(path, match, fn):
    with pytest.raises(RefsrError, match=match) as err:
        fn()
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg
    return msg


def test_checkpoint_wrong_model(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, build_model("srresnet", SMALL), "srresnet", SMALL)
    _one_line_error_naming(path, "expected srntt", lambda: load_checkpoint(path, expected="srntt"))
    load_checkpoint(path, expected=("srresnet", "srgan"))  # several allowed names


def test_checkpoint_corrupt_and_foreign_files(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, build_model("srresnet", SMALL), "srresnet", SMALL)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    _one_line_error_naming(truncated, "cannot read", lambda: load_checkpoint(truncated))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint\n" * 10)
    _one_line_error_naming(garbage, "cannot read", lambda: load_checkpoint(garbage))
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    _one_line_error_naming(foreign, "not a refsr checkpoint", lambda: load_checkpoint(foreign))
    missing = tmp_path / "missing.pt"
    _one_line_error_naming(missing, "not found", lambda: load_checkpoint(missing))


def test_checkpoint_shape_mismatch(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, build_model("srresnet", SMALL), "srresnet", SMALL)
    ckpt = torch.load(path, weights_only=True)
    ckpt["arch_cfg"]["n_feats"] = 16  # weights no longer fit the stored architecture
    torch.save(ckpt, path)
    _one_line_error_naming(path, "shape", lambda: load_checkpoint(path))


def test_parameter_counts_are_stable():
    # conv3x3(3→8) + 2 blocks·2 convs(8→8) + trunk conv + 2 up convs(8→32) + tail(8→3)
    c33 = lambda i, o: 9 * i * o + o  # noqa: E731
    expected = c33(3, 8) + 5 * c33(8, 8) + 2 * c33(8, 32) + c33(8, 3)
    assert count_parameters(SRResNet(n_blocks=2, n_feats=8)) == expected


def test_recipes_are_registered_and_stored(tmp_path):
    assert registry.recipe_of("srntt", validate({})) == "refsr"
    assert registry.recipe_of("bicubic", validate({})) == ""
    assert registry.row_label("srntt", "refsr") == "srntt (refsr)" and registry.row_label("bicubic", "") == "bicubic"
    with pytest.raises(RefsrError, match="config key recipe"):
        registry.check_config(validate({"recipe": "nope"}))
    with pytest.raises(RefsrError, match="no recipe"):
        registry.get("srntt", recipe="nope")
    path = tmp_path / "c.pt"
    save_checkpoint(path, build_model("srresnet", SMALL), "srresnet", SMALL)
    _, ckpt = load_checkpoint(path)
    assert ckpt["recipe"] == "refsr"

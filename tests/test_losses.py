"""Losses against hand computations, with a tiny stand-in for VGG."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from refsr.core.config import defaults, validate
from refsr.core.errors import RefsrError
from refsr.training.losses import (
    GeneratorLoss,
    LossConfig,
    PerceptualLoss,
    d_loss_wgan,
    discriminator_loss,
    g_loss_wgan,
    gradient_penalty,
    gram,
    reconstruction_loss,
    texture_loss,
)


class TinyVGG(nn.Module):
    """VGG-shaped stand-in: relu1_1 at full size (64 ch), relu2_1 at /2, relu3_1 at /4."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv2d(3, 64, 3, 1, 1)
        self.c2 = nn.Conv2d(64, 128, 3, 1, 1)
        self.c3 = nn.Conv2d(128, 256, 3, 1, 1)
        self.c5 = nn.Conv2d(256, 16, 3, 1, 1)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x):
        r1 = torch.relu(self.c1(x))
        r2 = torch.relu(self.c2(nn.functional.max_pool2d(r1, 2)))
        r3 = torch.relu(self.c3(nn.functional.max_pool2d(r2, 2)))
        r5 = torch.relu(self.c5(r3))
        return {"relu1_1": r1, "relu2_1": r2, "relu3_1": r3, "relu5_1": r5}


class LinearCritic(nn.Module):
    """D(x) = Σ w·x: its input gradient is w everywhere."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1)


def test_reconstruction_is_l1():
    a, b = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    b[0, 0, 0, 0] = -1.5
    assert reconstruction_loss(a, b).item() == pytest.approx((11 * 0.5 + 1.5) / 12)


def test_gram_by_hand():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    assert gram(x).item() == pytest.approx((1 + 4 + 9 + 16) / 4)
    y = torch.tensor([[[1.0, 0.0]], [[2.0, 3.0]]]).reshape(1, 2, 1, 2)  # C=2, H=1, W=2
    expected = torch.tensor([[1.0, 2.0], [2.0, 13.0]]) / (2 * 1 * 2)
    assert torch.allclose(gram(y)[0], expected)


def _texture_inputs(h=5, w=6):
    vgg = TinyVGG()
    sr = torch.rand(2, 3, 4 * h, 4 * w, requires_grad=True)
    feats = vgg(sr)
    s_star = torch.rand(2, 1, h, w)
    return feats, s_star


def test_texture_loss_zero_when_psi_equals_m_and_positive_otherwise():
    feats, s_star = _texture_inputs()
    maps = {k: v.detach().clone() for k, v in feats.items()}
    assert texture_loss(feats, maps, s_star).item() == 0.0
    maps["relu2_1"] = maps["relu2_1"] * 1.5
    loss = texture_loss(feats, maps, s_star)
    assert loss.item() > 0
    loss.backward()  # differentiable w.r.t. the SR features


def test_texture_loss_normalisation_by_hand():
    # One layer, C=1, H=W=1, S*=1: term = (ψ² − m²)² / 4.
    feats = {"relu3_1": torch.tensor([[[[3.0]]]])}
    maps = {"relu3_1": torch.tensor([[[[1.0]]]])}
    loss = texture_loss(feats, maps, torch.ones(1, 1, 1, 1), layers=("relu3_1",))
    assert loss.item() == pytest.approx((9 - 1) ** 2 / 4)


def test_texture_loss_ignores_zero_weight_regions():
    feats, _ = _texture_inputs()
    maps = {k: v.detach().clone() for k, v in feats.items()}
    maps["relu3_1"] = maps["relu3_1"] + 1.0
    zero = torch.zeros(2, 1, 5, 6)
    assert texture_loss(feats, maps, zero, layers=("relu3_1",)).item() == 0.0


def test_texture_loss_shape_mismatch():
    feats, s_star = _texture_inputs()
    maps = {k: v.detach()[..., :-1] for k, v in feats.items()}
    with pytest.raises(RefsrError, match=r"maps\[relu1_1\]"):
        texture_loss(feats, maps, s_star)


def test_perceptual_loss():
    vgg = TinyVGG()
    x = torch.rand(1, 3, 16, 16)
    assert PerceptualLoss(vgg, "relu3_1")(x, x).item() == 0.0
    y = torch.rand(1, 3, 16, 16)
    expected = ((vgg(x)["relu5_1"] - vgg(y)["relu5_1"]) ** 2).mean()
    assert PerceptualLoss(vgg)(x, y).item() == pytest.approx(expected.item())
    with pytest.raises(RefsrError, match="relu4_1"):
        PerceptualLoss(vgg, "relu4_1")(x, y)


@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
def test_gradient_penalty_of_linear_critic(scale):
    w = torch.randn(1, 3, 8, 8)
    w = w / w.norm() * scale
    critic = LinearCritic(w)
    real, fake = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    gp = gradient_penalty(critic, real, fake)
    assert gp.item() == pytest.approx((scale - 1) ** 2, abs=1e-5)
    if scale != 1.0:
        gp.backward()  # the penalty trains the critic
        assert critic.w.grad is not None and critic.w.grad.abs().sum() > 0


def test_wgan_signs():
    critic = LinearCritic(torch.ones(1, 3, 4, 4))
    real, fake = torch.ones(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    # The critic scores real (48) above fake (0): its loss is negative, the generator's is 0.
    assert d_loss_wgan(critic, real, fake).item() == pytest.approx(-48.0)
    assert g_loss_wgan(critic, fake).item() == 0.0
    assert g_loss_wgan(critic, real).item() == pytest.approx(-48.0)
    fake_g = torch.zeros(2, 3, 4, 4, requires_grad=True)
    g_loss_wgan(critic, fake_g).backward()  # generator pushes fake towards higher scores
    assert (fake_g.grad < 0).all()
    d = discriminator_loss(critic, real, fake, gp_weight=10.0)
    assert d["total"].item() == pytest.approx(d["wgan"].item() + 10 * d["gp"].item())


def loss_section(**overrides) -> dict:
    """The schema's ``loss`` section with ``overrides``."""
    return {**defaults("loss"), **overrides}


def test_loss_config():
    base = LossConfig.from_dict(loss_section())
    assert (base.reconstruction, base.perceptual, base.texture, base.adversarial, base.gp) == \
        (1.0, 1e-4, 1e-4, 1e-6, 10.0)  # the paper's weights, as the schema's defaults
    l2 = LossConfig.from_dict(loss_section(), model="srntt_l2")
    assert l2.active() == ("reconstruction",) and l2.vgg_layers() == ()
    full = LossConfig.from_dict(loss_section(perceptual_layer="relu3_1"), model="srntt")
    assert full.active() == ("reconstruction", "perceptual", "texture", "adversarial")
    assert full.vgg_layers() == ("relu1_1", "relu2_1", "relu3_1")
    assert LossConfig.from_dict(loss_section(), model="srgan").vgg_layers() == ("relu5_1",)
    with pytest.raises(RefsrError, match="unknown key"):
        LossConfig.from_dict(loss_section(txture=1))
    with pytest.raises(RefsrError, match="missing key"):
        LossConfig.from_dict({"texture": 1})
    with pytest.raises(RefsrError, match="config key loss.texture"):
        validate({"loss": {"texture": -1}})  # values are checked once, by the schema


def test_generator_loss_combines_terms():
    vgg = TinyVGG()
    critic = LinearCritic(torch.randn(1, 3, 20, 24) * 0.01)
    cfg = LossConfig.from_dict(
        loss_section(texture=0.5, perceptual=0.25, adversarial=0.125), model="srntt"
    )
    loss = GeneratorLoss(cfg, vgg=vgg, disc=critic)
    sr = torch.rand(2, 3, 20, 24, requires_grad=True)
    hr = torch.rand(2, 3, 20, 24)
    maps = {k: v.detach() for k, v in vgg(hr).items()}
    out = loss(sr, hr, maps=maps, s_star=torch.rand(2, 1, 5, 6))
    assert set(out) == {"reconstruction", "perceptual", "texture", "adversarial", "total"}
    expected = (
        out["reconstruction"]
        + 0.25 * out["perceptual"]
        + 0.5 * out["texture"]
        + 0.125 * out["adversarial"]
    )
    assert out["total"].item() == pytest.approx(expected.item())
    out["total"].backward()
    assert sr.grad is not None
    only_l1 = GeneratorLoss(LossConfig.from_dict(loss_section(), model="srresnet"))(sr, hr)
    assert set(only_l1) == {"reconstruction", "total"}
    with pytest.raises(ValueError, match="VGG"):
        GeneratorLoss(cfg, disc=critic)

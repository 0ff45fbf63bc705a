"""Recipe official: the released losses, critic and training schedule (refsr.training.official)."""

from __future__ import annotations

import pytest
import torch
from conftest import arch, train_config

from refsr.data import build_to
from refsr.data.lr import write_lr
from refsr.features.vgg import load_vgg19
from refsr.models import registry
from refsr.models.checkpoint import arch_config, build_model, save_checkpoint
from refsr.models.discriminator_official import OfficialCritic, same_padding
from refsr.models.srntt_official import SRNTTOfficial, SRResNetOfficial
from refsr.training import official_losses as L
from refsr.training.data import TrainingSet, build_correspondence_cache, released_upscaler
from refsr.training.official import OfficialTrainer

ARCH = arch(n_blocks=1, n_feats=8, n_blocks_transfer=[1, 1, 1])
LOSS = {"perceptual_layer": "relu3_1"}
DISC = {"n_feats": 4, "n_down": 2, "n_hidden": 8}


@pytest.fixture(scope="module")
def data(tmp_path_factory, vgg_weights):
    root = tmp_path_factory.mktemp("official")
    cfg = dict(kind="embedded", test_photos=["astronaut"], train_photos=["brick", "retina"],
               hr_size=48, train_size=48, train_pairs=4, seed=0)
    ds = build_to("tiny", cfg, root / "tiny", 4)
    write_lr(ds, root / "tiny" / "lr")
    build_correspondence_cache(ds, root / "tiny" / "lr", root / "corr", load_vgg19(("relu3_1",)))
    return ds, root


def _cfg(model, iterations=4, **options):
    return train_config(model, recipe="official", arch=ARCH, loss=LOSS, iterations=iterations, batch_size=2,
                        disc=DISC, checkpoint_every=2, log_every=1, options=options)


def _parent(model, path):
    parent = registry.get(model).parent
    sizes = arch_config(parent, ARCH, recipe="official")
    torch.manual_seed(1)
    save_checkpoint(path, build_model(parent, sizes, recipe="official"), parent, sizes, recipe="official")
    return str(path)


def _trainer(model, data, state, init=None, **kw):
    ds, root = data
    corr = root / "corr" if registry.get(model).correspondence else None
    return OfficialTrainer(_cfg(model, **kw), TrainingSet(ds, root / "tiny" / "lr", corr), state, init_ckpt=init)


def test_registry_entries_and_options():
    for name, cls in (("srresnet", SRResNetOfficial), ("srgan", SRResNetOfficial),
                      ("srntt_l2", SRNTTOfficial), ("srntt", SRNTTOfficial)):
        spec = registry.get(name, recipe="official")
        assert spec.trainer == "refsr.training.official:OfficialTrainer"
        assert isinstance(build_model(name, ARCH, recipe="official"), cls)
    cfg = _cfg("srntt")
    assert cfg.disc == DISC and set(cfg.options) == {"vgg19_mat", "texture_weight_map", "lr_decay"}
    assert set(_cfg("srntt_l2").options) == {"vgg19_mat"} and _cfg("srresnet").options == {}
    assert train_config("srntt").options == {}  # recipe refsr has none


def test_srntt_trains_only_the_texture_transfer_with_the_released_schedule(data, tmp_path):
    t = _trainer("srntt", data, tmp_path / "s.pt", _parent("srntt", tmp_path / "p.pt"))
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    t.run()
    after = t.model.state_dict()
    extractor = [k for k in before if k.startswith("extractor.") and "num_batches" not in k]
    assert extractor and all(torch.equal(before[k], after[k]) for k in extractor)  # weights and BN averages
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("small."))
    row = t.rows[0]
    for key in ("reconstruction", "perceptual", "texture", "adversarial", "texture_truth", "d_wgan", "d_gp"):
        assert key in row, key
    # six global steps per batch, x0.1 every iterations/2 = 2 of them
    assert [r["lr"] for r in t.rows] == pytest.approx([1e-4 * 0.1 ** (6 * i // 2) for i in range(4)])
    assert t.opt.param_groups[0]["lr"] == pytest.approx(1e-4 * 0.1 ** ((6 * 3 + 4) // 2))


def test_batches_decay_drops_once_at_half(data, tmp_path):
    t = _trainer("srgan", data, tmp_path / "s.pt", _parent("srgan", tmp_path / "p.pt"), lr_decay="batches")
    t.run()
    assert [r["lr"] for r in t.rows] == pytest.approx([1e-4, 1e-4, 1e-5, 1e-5])
    assert "reconstruction_truth" not in t.rows[0]  # no truth step without references


def test_srntt_l2_two_reconstruction_steps_constant_lr(data, tmp_path):
    t = _trainer("srntt_l2", data, tmp_path / "s.pt", _parent("srntt_l2", tmp_path / "p.pt"))
    t.run()
    assert t.disc is None and {"reconstruction", "reconstruction_truth"} <= set(t.rows[0])
    assert [r["lr"] for r in t.rows] == [1e-4] * 4
    assert t.opt.param_groups[0]["betas"] == (0.9, 0.999)


@pytest.mark.parametrize("model", ["srresnet", "srntt"])
def test_resume_equals_uninterrupted(model, data, tmp_path):
    init = None if model == "srresnet" else _parent(model, tmp_path / "p.pt")
    full = _trainer(model, data, tmp_path / "a.pt", init)
    full.run()

    class Killed(Exception):
        pass

    def kill(iteration):
        if iteration == 3:
            raise Killed

    with pytest.raises(Killed):
        _trainer(model, data, tmp_path / "b.pt", init).run(on_iteration=kill)
    resumed = _trainer(model, data, tmp_path / "b.pt", init)
    assert resumed.iteration == 2
    resumed.run()
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_weighted_texture_uses_the_cached_cosine(data, tmp_path):
    t = _trainer("srntt", data, tmp_path / "s.pt", _parent("srntt", tmp_path / "p.pt"), texture_weight_map=True,
                 iterations=1)
    t.run()
    plain = _trainer("srntt", data, tmp_path / "u.pt", str(tmp_path / "p.pt"), iterations=1)
    plain.run()
    assert t.rows[0]["texture"] != plain.rows[0]["texture"]


# ----------------------------------------------------------------------------- losses, critic


def test_texture_loss_normalisation_by_hand():
    g = torch.Generator().manual_seed(0)
    shapes = {"relu3_1": (2, 256, 3, 4), "relu2_1": (2, 128, 6, 8), "relu1_1": (2, 64, 12, 16)}
    f = {k: torch.rand(*s, generator=g) for k, s in shapes.items()}
    m = {k: torch.rand(*s, generator=g) for k, s in shapes.items()}
    expected = 0.0
    for k, (_n, c, h, w) in shapes.items():
        gf = torch.einsum("nchw,ndhw->ncd", f[k].double(), f[k].double())
        gm = torch.einsum("nchw,ndhw->ncd", m[k].double(), m[k].double())
        expected += ((gm - gf) ** 2).mean().item() / 4 / (h * w * c) ** 2
    assert L.texture(f, m).item() == pytest.approx(expected / 3, rel=1e-4)
    assert L.texture(f, f).item() == 0.0
    cos = torch.rand(2, 1, 3, 4, generator=g)
    weighted = L.texture(f, m, cos)
    assert weighted.item() != pytest.approx(L.texture(f, m).item())
    w = torch.sigmoid(-20 * cos + 0.65)
    assert torch.allclose(L.weight_map(cos, (3, 4)), w)


def test_gradient_penalty_is_per_pixel_over_channels():
    w = torch.tensor([0.3, 0.4, 1.2]).view(1, 3, 1, 1)

    def linear(x):
        return (x * w).sum(dim=(1, 2, 3))

    real, fake = torch.rand(2, 3, 5, 6), torch.rand(2, 3, 5, 6)
    gp = L.gradient_penalty(linear, real, fake)
    assert gp.item() == pytest.approx((w.norm() - 1).item() ** 2, rel=1e-5)  # not sqrt(H*W)*|w|


def test_released_critic_shapes_and_same_padding():
    assert same_padding(48, 3, 2) == (0, 1) and same_padding(47, 3, 2) == (1, 1) and same_padding(9, 3, 1) == (1, 1)
    critic = OfficialCritic((48, 40), n_feats=4, n_down=3, n_hidden=8)
    assert critic.fc.in_features == 16 * 6 * 5
    assert critic(torch.rand(3, 3, 48, 40) * 2 - 1).shape == (3,)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in critic.modules()) == 6
    assert all(c.bias is None for c in critic.modules() if isinstance(c, torch.nn.Conv2d))
    with pytest.raises(Exception, match="built for"):
        critic(torch.rand(1, 3, 32, 32))


def test_released_initialisation():
    torch.manual_seed(0)
    net = SRNTTOfficial(n_blocks=2, n_feats=64, n_blocks_transfer=(2, 1, 1))
    w = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, torch.nn.Conv2d)])
    assert w.std().item() == pytest.approx(0.02, rel=0.05)
    gammas = torch.cat([m.weight for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert gammas.mean().item() == pytest.approx(1.0, abs=0.01)
    assert all(m.eps == 1e-5 and m.momentum == pytest.approx(0.1) for m in net.modules()
               if isinstance(m, torch.nn.BatchNorm2d))


def test_released_training_maps_match_an_untrained_network(data, tmp_path):
    ds, root = data
    up = released_upscaler(1, 8, seed=0)
    x = torch.rand(2, 3, 6, 7)
    assert up(x).shape == (2, 3, 24, 28)
    torch.testing.assert_close(up(x), released_upscaler(1, 8, seed=0)(x))  # seeded
    build_correspondence_cache(ds, root / "tiny" / "lr", tmp_path / "corr", load_vgg19(("relu3_1",)), upscaler=up)
    from refsr.matching import load_correspondence

    name = ds.train[0].name
    a = load_correspondence(tmp_path / "corr" / f"{name}.npz")
    b = load_correspondence(root / "corr" / f"{name}.npz")
    assert a.index.shape == b.index.shape and not torch.equal(a.index, b.index)


def test_sisr_training_maps_use_the_trained_checkpoint(data, tmp_path):
    from refsr.training.data import sisr_upscaler

    ckpt = _parent("srntt_l2", tmp_path / "srresnet.pt")  # an official SRResNet checkpoint
    up = sisr_upscaler(ckpt)
    x = torch.rand(1, 3, 6, 7)
    from refsr.models.checkpoint import load_checkpoint

    net, _ = load_checkpoint(ckpt)
    torch.testing.assert_close(up(x), net(x).clamp(0, 1))
    with pytest.raises(Exception, match="expected srresnet or srgan"):
        sisr_upscaler(_parent("srntt", tmp_path / "l2.pt"))

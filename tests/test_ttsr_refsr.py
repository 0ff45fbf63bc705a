"""TTSR's recipe refsr (refsr.models.ttsr.TTSRResidual, refsr.training.ttsr, the registry's
per-recipe parent): the registry entries, the untrained network is bicubic, ttsr_rec trains and
ttsr starts from it, both resume, and checkpoints of the other recipe are refused in one line."""

from __future__ import annotations

import dataclasses
import signal

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_training_set, train_config

from refsr.core.config import validate
from refsr.core.errors import RefsrError
from refsr.data.layout import read_manifest
from refsr.models import registry
from refsr.models.checkpoint import load_checkpoint, read_checkpoint
from refsr.models.ttsr import TTSR, TTSRResidual
from refsr.training.config import config_for
from refsr.training.data import TrainingSet
from refsr.training.preemption import Preempted
from refsr.training.ttsr import TTSRTrainer

SMALL = {"n_blocks": [1, 1, 1, 1], "n_feats": 8, "res_scale": 1.0}


def test_registry_entries_of_both_recipes():
    for name in ("ttsr_rec", "ttsr"):
        official, ours = registry.get(name, recipe="official"), registry.get(name, recipe="refsr")
        assert registry.get(name) is official  # the default recipe: released weights keep loading
        assert official.architecture == "refsr.models.ttsr:TTSR" and official.parent is None
        assert ours.architecture == "refsr.models.ttsr:TTSRResidual" and ours.textures == "learned"
        assert ours.trainer == official.trainer and ours.losses == official.losses
    assert (registry.get("ttsr", recipe="refsr").parent, registry.get("ttsr", recipe="refsr").init) == ("ttsr_rec", "full")
    assert registry.get("ttsr_rec", recipe="refsr").parent is None


def test_training_chain_follows_the_configs_recipe():
    from refsr.pipeline.plan import Plan

    ours, released = validate({"models": ["bicubic", "ttsr"]}), validate({"models": ["bicubic", "ttsr"], "recipe": "official"})
    assert registry.to_train(ours) == ["ttsr_rec", "ttsr"] and registry.to_train(released) == ["ttsr"]
    assert registry.ancestors("ttsr", ours) == ["ttsr_rec"] and registry.ancestors("ttsr", released) == []
    assert Plan(ours).train_inputs("ttsr")["init"] == "results/models/ttsr_rec/checkpoint.pt"
    assert "init" not in Plan(released).train_inputs("ttsr")
    opts = config_for("ttsr", validate({"ttsr": {"refsr": {"lr": 4e-4, "lr_end": 1e-5}}})).options
    assert opts["lr"] == 4e-4 and opts["lr_end"] == 1e-5 and "init_iterations" not in opts
    assert "lr" not in config_for("ttsr", released).options and "init_iterations" in config_for("ttsr", released).options


def test_untrained_residual_network_is_bicubic_with_the_released_parameters():
    torch.manual_seed(0)
    net = TTSRResidual(**SMALL).eval()
    assert list(net.state_dict()) == list(TTSR(**SMALL).state_dict())
    lr, ref = torch.rand(1, 3, 12, 14) * 2 - 1, torch.rand(1, 3, 48, 40) * 2 - 1
    up = F.interpolate(lr, scale_factor=4, mode="bicubic")
    with torch.no_grad():
        sr = net(lr, up, ref, ref)[0]
        maps = net.textures(up, [ref], [ref])
        assert torch.equal(sr, up) and torch.equal(net.run_main(lr, maps), up)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tiny_training_set(tmp_path_factory.mktemp("ttsr_refsr") / "tiny")
    return TrainingSet(read_manifest(root / "manifest.csv"), root / "lr")


def _cfg(model, recipe="refsr", iterations=4, **options):
    cfg = train_config(model, recipe=recipe, arch=SMALL, iterations=iterations, batch_size=2,
                       checkpoint_every=2, log_every=1, options=options)
    return dataclasses.replace(cfg, loss={**cfg.loss, "perceptual_layer": "relu3_1"}) if model == "ttsr" else cfg


def _rec_checkpoint(data, vgg_weights, path, recipe="refsr"):
    trainer = TTSRTrainer(_cfg("ttsr_rec", recipe, iterations=2), data, path.with_suffix(".state"),
                          vgg_weights=vgg_weights)
    trainer.run()
    trainer.write_outputs(path, path.with_suffix(".csv"))
    return trainer


def test_ttsr_rec_trains_on_a_decaying_rate_and_ttsr_starts_from_it_and_resumes(data, vgg_weights, tmp_path):
    rec = TTSRTrainer(_cfg("ttsr_rec", lr=4e-4, lr_end=1e-5), data, tmp_path / "rec.state", vgg_weights=vgg_weights)
    rec.run()
    assert [r["lr"] for r in rec.rows] == pytest.approx([4e-4, 4e-4 * 0.75 + 1e-5 * 0.25, 4e-4 * 0.25 + 1e-5 * 0.75, 1e-5])
    assert rec.opt.param_groups[1]["lr"] == pytest.approx(rec.cfg.options["lr_lte"] * 1e-5 / 4e-4)
    assert rec.model.MainNet.merge_tail.conv_tail2.weight.abs().sum() > 0  # the residual learns
    rec.write_outputs(tmp_path / "rec.pt", tmp_path / "rec.csv")
    assert read_checkpoint(tmp_path / "rec.pt")["recipe"] == "refsr"

    cfg = _cfg("ttsr", iterations=4)
    full = TTSRTrainer(cfg, data, tmp_path / "full.state", init_ckpt=str(tmp_path / "rec.pt"), vgg_weights=vgg_weights)
    start = {k: v.clone() for k, v in full.model.state_dict().items()}
    assert all(torch.equal(start[k], v) for k, v in rec.model.state_dict().items())  # every weight, the LTE too
    full.run()
    assert {"perceptual", "transferal", "adversarial", "d_gp"} <= set(full.rows[0])  # no warm-up of its own
    first = TTSRTrainer(cfg, data, tmp_path / "s2.state", init_ckpt=str(tmp_path / "rec.pt"), vgg_weights=vgg_weights)
    with pytest.raises(Preempted):
        first.run(stop_requested=lambda: signal.SIGTERM if first.iteration == 2 else 0)
    again = TTSRTrainer(cfg, data, tmp_path / "s2.state", init_ckpt=str(tmp_path / "rec.pt"), vgg_weights=vgg_weights)
    assert again.iteration == 2
    again.run()
    for (k, a), b in zip(full.model.state_dict().items(), again.model.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), k
    with pytest.raises(RefsrError, match="needs the trained ttsr_rec checkpoint"):
        TTSRTrainer(cfg, data, tmp_path / "none.state", vgg_weights=vgg_weights)


def test_official_ttsr_rec_is_refused_as_the_parent_of_refsr_ttsr(data, vgg_weights, tmp_path):
    _rec_checkpoint(data, vgg_weights, tmp_path / "official.pt", recipe="official")
    with pytest.raises(RefsrError) as exc:
        TTSRTrainer(_cfg("ttsr"), data, tmp_path / "t.state", init_ckpt=str(tmp_path / "official.pt"),
                    vgg_weights=vgg_weights)
    assert str(exc.value) == (f"{tmp_path / 'official.pt'}: checkpoint of ttsr_rec in recipe official, but ttsr "
                              "trains in recipe refsr: its parent must be of the same recipe")
    assert "\n" not in str(exc.value)


def test_weights_of_the_other_recipe_are_refused_either_way(data, vgg_weights, tmp_path):
    from refsr.models import importers
    from refsr.stages.import_weights import import_one

    # released (official) TTSR weights where the config runs recipe refsr
    with pytest.raises(RefsrError, match=r"^config key pretrained\.ttsr\.source: ttsr-official gives ttsr weights "
                                         r"of recipe official, but the config runs ttsr in recipe refsr \(set recipe: official\)$"):
        importers.check_config(validate({"pretrained": {"ttsr": {"source": "ttsr-official", "path": "TTSR.pt"}}}))
    importers.check_config(validate({"recipe": "official",
                                     "pretrained": {"ttsr": {"source": "ttsr-official", "path": "TTSR.pt"}}}))
    # a recipe-refsr checkpoint where the config runs recipe official, and the reverse
    _rec_checkpoint(data, vgg_weights, tmp_path / "ours.pt")
    with pytest.raises(RefsrError, match=r"ttsr_rec weights of recipe refsr, but the config runs ttsr_rec in "
                                         r"recipe official \(set config key recipe: refsr\)$"):
        import_one("ttsr_rec", "refsr", tmp_path / "ours.pt", tmp_path / "out" / "a.pt", recipe="official")
    _rec_checkpoint(data, vgg_weights, tmp_path / "theirs.pt", recipe="official")
    with pytest.raises(RefsrError, match=r"ttsr_rec weights of recipe official, but the config runs ttsr_rec in "
                                         r"recipe refsr \(set config key recipe: official\)$"):
        import_one("ttsr_rec", "refsr", tmp_path / "theirs.pt", tmp_path / "out" / "b.pt", recipe="refsr")
    assert not (tmp_path / "out" / "a.pt").exists() and not (tmp_path / "out" / "b.pt").exists()
    net, ckpt = load_checkpoint(tmp_path / "ours.pt", expected="ttsr_rec")
    assert isinstance(net, TTSRResidual) and ckpt["recipe"] == "refsr"

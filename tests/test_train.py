"""Training: determinism, resume == uninterrupted, chain initialisation."""

from __future__ import annotations

import pytest
import torch
from conftest import arch, train_config

from refsr.data import build_to
from refsr.data.lr import write_lr
from refsr.models import registry
from refsr.models.checkpoint import arch_config, build_model, load_checkpoint, save_checkpoint
from refsr.training.data import TrainingSet, batch_indices, build_correspondence_cache
from refsr.training.trainer import Trainer

ARCH = arch(n_blocks=1, n_feats=8, n_blocks_transfer=[1, 1, 1])
LOSS = {"perceptual_layer": "relu3_1"}
DISC = {"n_feats": 4, "n_down": 2, "n_hidden": 8}


@pytest.fixture(scope="module")
def data(tmp_path_factory, vgg_weights):
    root = tmp_path_factory.mktemp("train")
    cfg = dict(kind="embedded", test_photos=["astronaut"], train_photos=["brick", "retina"],
               hr_size=48, train_size=48, train_pairs=5, seed=0)
    ds = build_to("tiny", cfg, root / "tiny", 4)
    write_lr(ds, root / "tiny" / "lr")
    from refsr.features.vgg import load_vgg19

    build_correspondence_cache(ds, root / "tiny" / "lr", root / "corr", load_vgg19(("relu3_1",)))
    return ds, root


def _cfg(model, iterations=6):
    return train_config(model, arch=ARCH, loss=LOSS, iterations=iterations, batch_size=2,
                        disc=DISC, checkpoint_every=2, log_every=1)


def _trainer(model, data, state, init=None):
    ds, root = data
    corr = root / "corr" if registry.get(model).correspondence else None
    return Trainer(_cfg(model), TrainingSet(ds, root / "tiny" / "lr", corr), state, init_ckpt=init)


def _parent_checkpoint(model, path):
    torch.manual_seed(1)
    parent = registry.get(model).parent
    sizes = arch_config(parent, ARCH)
    save_checkpoint(path, build_model(parent, sizes), parent, sizes)
    return str(path)


def test_batches_are_a_function_of_seed_and_iteration():
    seen = [i for it in range(5) for i in batch_indices(7, 3, 0, it)]
    assert sorted(seen[:7]) == list(range(7))  # first epoch covers every pair once
    assert batch_indices(7, 3, 0, 4) == batch_indices(7, 3, 0, 4)
    assert batch_indices(7, 3, 0, 0) != batch_indices(7, 3, 1, 0)


@pytest.mark.parametrize("model", ["srresnet", "srgan", "srntt"])
def test_resume_equals_uninterrupted(model, data, tmp_path):
    init = None if model == "srresnet" else _parent_checkpoint(model, tmp_path / "parent.pt")
    full = _trainer(model, data, tmp_path / "a.pt", init)
    full.run()

    class Killed(Exception):
        pass

    def kill_at_5(iteration):
        if iteration == 5:
            raise Killed

    first = _trainer(model, data, tmp_path / "b.pt", init)
    with pytest.raises(Killed):
        first.run(on_iteration=kill_at_5)
    resumed = _trainer(model, data, tmp_path / "b.pt", init)
    assert resumed.iteration == 4  # last periodic checkpoint before the kill
    resumed.run()
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert [r["total"] for r in full.rows] == [r["total"] for r in resumed.rows]


def test_state_of_another_config_is_not_resumed(data, tmp_path):
    t = _trainer("srresnet", data, tmp_path / "s.pt")
    t.run()
    ds, root = data
    other = Trainer(_cfg("srresnet", iterations=8), TrainingSet(ds, root / "tiny" / "lr"), tmp_path / "s.pt")
    assert other.iteration == 0


def test_srntt_l2_starts_from_srresnet_content_extractor(data, tmp_path):
    init = _parent_checkpoint("srntt_l2", tmp_path / "srresnet.pt")
    t = _trainer("srntt_l2", data, tmp_path / "s.pt", init)
    parent, _ = load_checkpoint(init)
    src = {k: v for k, v in parent.state_dict().items() if k.startswith("extractor.")}
    assert src
    dst = t.model.state_dict()
    assert all(torch.equal(v, dst[k]) for k, v in src.items())


def test_outputs(data, tmp_path):
    t = _trainer("srresnet", data, tmp_path / "s.pt")
    t.run()
    t.write_outputs(tmp_path / "ckpt.pt", tmp_path / "log.csv")
    model, ckpt = load_checkpoint(tmp_path / "ckpt.pt", expected="srresnet")
    assert ckpt["iterations"] == 6
    header = (tmp_path / "log.csv").read_text().splitlines()[0].split(",")
    assert {"iteration", "reconstruction", "total", "lr", "it_per_s"} <= set(header)


def test_initial_weights_do_not_depend_on_global_rng(data, tmp_path, monkeypatch):
    import refsr.features.vgg

    monkeypatch.setattr(refsr.features.vgg, "_CACHE", {})  # the first trainer builds a VGG (drawing from the RNG)
    a = _trainer("srgan", data, tmp_path / "a.pt", _parent_checkpoint("srgan", tmp_path / "p.pt"))
    b = _trainer("srgan", data, tmp_path / "b.pt", str(tmp_path / "p.pt"))
    for x, y in zip(a.disc.parameters(), b.disc.parameters(), strict=True):
        assert torch.equal(x, y)

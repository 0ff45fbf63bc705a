"""TTSR and TTSR-rec (refsr.models.ttsr, refsr.matching.relevance, refsr.training.ttsr,
refsr.models.importers.ttsr_official): the released network's outputs, the streamed relevance
search against a full matrix, the LTE's ImageNet initialisation, the importer, training."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import train_config

from refsr.core.errors import RefsrError
from refsr.data import build_to
from refsr.data.lr import write_lr
from refsr.features.vgg import load_vgg19
from refsr.matching import relevance
from refsr.models import registry
from refsr.models.checkpoint import load_checkpoint
from refsr.models.importers import import_weights
from refsr.models.ttsr import TTSR, TTSRCritic
from refsr.training.data import TrainingSet
from refsr.training.preemption import Preempted
from refsr.training.ttsr import TTSRTrainer, critic_loss, transferal_loss

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "ttsr-released"
SMALL = {"n_blocks": [1, 1, 1, 1], "n_feats": 8, "res_scale": 1.0}


def _fixture():
    if not (FIXTURE / "TTSR.pt").is_file():
        pytest.skip(f"the released TTSR fixture is absent ({FIXTURE})")
    return torch.load(FIXTURE / "TTSR.pt", weights_only=True), torch.load(FIXTURE / "inputs.pt", weights_only=True)


# ----------------------------------------------------------------------------- the released network


def test_released_outputs_reproduced():
    state, inp = _fixture()
    net = TTSR().eval()
    net.load_state_dict(state, strict=True)
    with torch.no_grad():
        sr, S, t3, t2, t1 = net(inp["lr"], inp["lrsr"], inp["ref"], inp["refsr"])
        maps = net.textures(inp["lrsr"], [inp["ref"]], [inp["refsr"]])
        sr_multi = net.run_main(inp["lr"], maps)
    for name, ours in (("out_sr", sr), ("S", S), ("T_lv3", t3), ("T_lv2", t2), ("T_lv1", t1)):
        theirs = torch.load(FIXTURE / f"{name}.pt", weights_only=True)
        assert ours.shape == theirs.shape, name
        assert (ours - theirs).abs().max().item() < 1e-5, name
    assert (sr_multi - torch.load(FIXTURE / "out_sr.pt", weights_only=True)).abs().max().item() < 1e-5
    r_arg = torch.load(FIXTURE / "R_arg.pt", weights_only=True).reshape(-1)
    assert (net.last_correspondence.index.reshape(-1).cpu() != r_arg).sum().item() == 0


def test_released_weights_import(tmp_path):
    _fixture()
    shutil_src = tmp_path / "TTSR-rec.pt"
    shutil_src.write_bytes((FIXTURE / "TTSR.pt").read_bytes())
    written = import_weights("ttsr-official", shutil_src, tmp_path / "out")
    assert set(written) == {"ttsr_rec"}
    net, ckpt = load_checkpoint(written["ttsr_rec"], expected="ttsr_rec")
    assert ckpt["recipe"] == "official" and list(net.n_blocks) == [16, 16, 8, 4]


# ----------------------------------------------------------------------------- relevance search


def _full_matrix(content, refs):
    """The released search: every normalised 3x3 patch pair (zero-padded unfold)."""
    q = F.normalize(F.unfold(content[None], 3, padding=1)[0], dim=0)  # (C·9) x N
    keys = torch.cat([F.normalize(F.unfold(r[None], 3, padding=1)[0], dim=0) for r in refs], dim=1)
    rel = keys.t() @ q  # N_ref x N
    score, index = rel.max(dim=0)
    return score.reshape(content.shape[1:]), index.reshape(content.shape[1:])


@pytest.mark.parametrize("n_refs", [1, 3])
def test_search_equals_full_matrix(n_refs):
    g = torch.Generator().manual_seed(n_refs)
    content = torch.rand(16, 7, 9, generator=g)
    refs = [torch.rand(16, 6 + k, 8 - k, generator=g) for k in range(n_refs)]
    score, index = _full_matrix(content, refs)
    corr = relevance.search(content, refs, max_mb=0.01)  # tiny budget: many blocks
    assert torch.equal(corr.index.reshape(index.shape).cpu(), index)
    assert (corr.cosine - score).abs().max().item() < 1e-5


def test_soft_attention_and_transfer_are_differentiable():
    g = torch.Generator().manual_seed(0)
    content = torch.rand(1, 16, 5, 6, generator=g, requires_grad=True)
    ref = torch.rand(1, 16, 6, 5, generator=g, requires_grad=True)
    corr = relevance.search(content[0].detach(), [ref[0].detach()])
    S = relevance.soft_attention(content, ref, [corr])
    score, _ = _full_matrix(content[0].detach(), [ref[0].detach()])
    assert (S[0, 0] - score).abs().max().item() < 1e-5
    levels = {"relu3_1": ref, "relu2_1": torch.rand(1, 4, 12, 10, requires_grad=True),
              "relu1_1": torch.rand(1, 2, 24, 20, requires_grad=True)}
    T = relevance.transfer_batch([corr], levels)
    assert T["relu1_1"].shape == (1, 2, 20, 24)
    (S.sum() + sum(t.sum() for t in T.values())).backward()
    assert content.grad.abs().sum() > 0 and ref.grad.abs().sum() > 0
    assert levels["relu1_1"].grad.abs().sum() > 0


def test_full_matrix_bytes_of_released_search():
    # one same-size reference: the README's 0.40 GiB at 500x332 and 14.6 GiB at 1000x1000
    assert relevance.full_matrix_bytes(332, 500, 332, 500) / 2**30 == pytest.approx(0.40, abs=0.01)
    assert relevance.full_matrix_bytes(1000, 1000, 1000, 1000) / 2**30 == pytest.approx(14.6, abs=0.1)


# ----------------------------------------------------------------------------- LTE, critic, losses


def test_lte_loads_imagenet_weights(vgg_weights):
    net = TTSR(**SMALL)
    source = net.LTE.load_imagenet(vgg_weights)
    assert Path(source).name == Path(vgg_weights).name
    vgg = load_vgg19(("relu3_1",), weights=vgg_weights)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert (net.LTE(x)[2] - vgg(x)["relu3_1"]).abs().max().item() < 1e-4  # values ~30
        assert (net.LTE(x)[0] - load_vgg19(("relu1_1",), weights=vgg_weights)(x)["relu1_1"]).abs().max() < 1e-5


def test_critic_and_losses():
    critic = TTSRCritic((64, 96))
    x = torch.rand(2, 3, 64, 96) * 2 - 1
    assert critic(x).shape == (2, 1)
    terms = critic_loss(critic, x, x.flip(0), gp=10.0, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(terms["total"]) and terms["gp"] >= 0
    a = [torch.rand(1, 4, 3, 3) for _ in range(3)]
    assert transferal_loss(a, a).item() == 0.0
    assert transferal_loss(a, [t + 1 for t in a]).item() == pytest.approx(1.0)
    with pytest.raises(RefsrError, match="32 px"):
        TTSRCritic(16)


# ----------------------------------------------------------------------------- importer refusals


def _released_like(**arch) -> dict:
    return {k: v.clone() for k, v in TTSR(**{**SMALL, **arch}).state_dict().items()}


def test_importer_reads_sizes_and_names_models(tmp_path):
    state = _released_like(n_blocks=[2, 1, 1, 3])
    state = {f"module.{k}": v for k, v in state.items()}  # DataParallel prefix, as saved from 2 GPUs
    state["LTE_copy.slice1.0.weight"] = torch.zeros(1)
    src = tmp_path / "released"
    src.mkdir()
    torch.save(state, src / "TTSR.pt")
    torch.save(state, src / "TTSR-rec.pt")
    written = import_weights("ttsr-official", src, tmp_path / "out")
    assert set(written) == {"ttsr", "ttsr_rec"}
    net, ckpt = load_checkpoint(written["ttsr"], expected="ttsr")
    assert list(net.n_blocks) == [2, 1, 1, 3] and net.MainNet.SFE.conv_head.out_channels == 8


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("MainNet.conv11_head.weight"), "MainNet.conv11_head.weight"),
    (lambda s: s.__setitem__("MainNet.SFE.conv_head.weight", torch.zeros(8, 3, 5, 5)), "MainNet.SFE.conv_head.weight"),
    (lambda s: s.__setitem__("Extra.weight", torch.zeros(1)), "Extra.weight"),
])
def test_importer_refuses_naming_the_first_bad_key(tmp_path, edit, message):
    state = _released_like()
    edit(state)
    torch.save(state, tmp_path / "TTSR.pt")
    with pytest.raises(RefsrError, match=message.replace(".", r"\.")):
        import_weights("ttsr-official", tmp_path / "TTSR.pt", tmp_path / "out")
    assert not (tmp_path / "out" / "ttsr.pt").exists()


# ----------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ttsr")
    cfg = dict(kind="embedded", test_photos=["astronaut"], train_photos=["brick", "retina"],
               hr_size=48, train_size=48, train_pairs=4, seed=0)
    ds = build_to("tiny", cfg, root / "tiny", 4)
    write_lr(ds, root / "tiny" / "lr")
    return TrainingSet(ds, root / "tiny" / "lr"), root


def _cfg(model, iterations=4, **options):
    loss = {"perceptual_layer": "relu3_1"} if model == "ttsr" else {}
    cfg = train_config(model, recipe="official", arch=SMALL, iterations=iterations, batch_size=2,
                       checkpoint_every=2, log_every=1, options=options)
    return cfg if not loss else __import__("dataclasses").replace(cfg, loss={**cfg.loss, **loss})


def test_registry_and_config_of_ttsr():
    for name in ("ttsr", "ttsr_rec"):
        spec = registry.get(name)
        assert spec.textures == "learned" and spec.recipe == "official" and not spec.correspondence
        assert spec.trainer == "refsr.training.ttsr:TTSRTrainer" and spec.parent is None
    cfg = _cfg("ttsr")
    assert cfg.options["init_iterations"] == 2638 and cfg.options["critic_steps"] == 2
    assert cfg.loss["transferal"] == 1e-2 and cfg.loss["adversarial"] == 1e-3
    assert "init_iterations" not in _cfg("ttsr_rec").options and "lr_critic" not in _cfg("ttsr_rec").options


def test_ttsr_trains_every_term_and_resumes(data, vgg_weights, tmp_path):
    ds, _ = data
    cfg = _cfg("ttsr", iterations=4, init_iterations=2)
    trainer = TTSRTrainer(cfg, ds, tmp_path / "state.pt", vgg_weights=vgg_weights)
    lte_before = trainer.model.LTE.slice3[0].weight.detach().clone()
    trainer.run()
    rows = trainer.rows
    assert "perceptual" not in rows[1] and {"perceptual", "transferal", "adversarial", "d_gp"} <= set(rows[2])
    assert not torch.equal(lte_before, trainer.model.LTE.slice3[0].weight)  # the LTE trains (lr_lte)
    assert torch.equal(trainer.model.LTE.sub_mean.weight, TTSR(**SMALL).LTE.sub_mean.weight)
    # stopped (as on SIGTERM) after iteration 2, resumed from its state: the same weights
    first = TTSRTrainer(cfg, ds, tmp_path / "s2.pt", vgg_weights=vgg_weights)
    with pytest.raises(Preempted):
        first.run(stop_requested=lambda: signal.SIGTERM if first.iteration == 2 else 0)
    again = TTSRTrainer(cfg, ds, tmp_path / "s2.pt", vgg_weights=vgg_weights)
    assert again.iteration == 2
    again.run()
    for (k, a), b in zip(trainer.model.state_dict().items(), again.model.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), k


def test_ttsr_rec_trains_and_checkpoint_runs_inference(data, vgg_weights, tmp_path):
    from refsr.inference.resolver import SuperResolver

    ds, _ = data
    trainer = TTSRTrainer(_cfg("ttsr_rec", iterations=2), ds, tmp_path / "state.pt", vgg_weights=vgg_weights)
    trainer.run()
    assert set(trainer.rows[-1]) >= {"reconstruction", "train_psnr"} and "adversarial" not in trainer.rows[-1]
    trainer.write_outputs(tmp_path / "ck.pt", tmp_path / "log.csv")
    sample = ds[0]
    lr = (sample.lr.permute(1, 2, 0) * 255).round().byte().numpy()
    ref = (sample.ref.permute(1, 2, 0) * 255).round().byte().numpy()
    whole = SuperResolver(str(tmp_path / "ck.pt"), model="ttsr_rec", tile=0)
    assert whole.uses_reference
    out = whole(lr, [ref, ref[:30, :34]])
    assert out.shape == (lr.shape[0] * 4, lr.shape[1] * 4, 3)
    tiled = SuperResolver(str(tmp_path / "ck.pt"), model="ttsr_rec", tile=5, pad=4)(lr, [ref, ref[:30, :34]])
    assert abs(out.astype(int) - tiled.astype(int)).max() <= 1
    with pytest.raises(RefsrError, match="reference"):
        whole(lr, [])
    # the correspondence figure's TTSR row: hard attention in the reference's own grid
    from refsr.core.config import validate
    from refsr.pipeline import jobs
    from refsr.report.figures import plot_correspondence
    from refsr.stages.figures import hard_attention_view

    spec = jobs.figures(validate({"vgg19_weights": vgg_weights, "models": ["ttsr_rec"]}))["resolvers"]["ttsr_rec"]
    view, sr = hard_attention_view(tmp_path / "ck.pt", lr, ref, spec, max_mb=64)
    assert view.py.shape == (lr.shape[0], lr.shape[1]) and sr.shape == out.shape
    assert view.ref_grid == (ref.shape[0] // 4, ref.shape[1] // 4)
    assert 0 <= view.py.min() and view.py.max() < view.ref_grid[0] and view.px.max() < view.ref_grid[1]
    plot_correspondence([(sr, "a", view, "SRNTT"), (sr, "b", view, "TTSR")], ref, "L1", "t", tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 0
    # refsr sr --checkpoint: two references, one output of the LR's x4 size
    from refsr.cli import main
    from refsr.core.imageio import read_image, write_image

    write_image(tmp_path / "lr.png", lr)
    write_image(tmp_path / "ref.png", ref)
    assert main(["sr", "--lr", str(tmp_path / "lr.png"), "--ref", str(tmp_path / "ref.png"), "--ref",
                 str(tmp_path / "ref.png"), "--checkpoint", str(tmp_path / "ck.pt"), "--out", str(tmp_path / "sr.png")]) == 0
    assert read_image(tmp_path / "sr.png").shape == out.shape

"""Approximate matching: agreement with the exact search on small inputs (no timing checks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from refsr import matching as S
from refsr.core.config import defaults
from refsr.core.errors import RefsrError
from refsr.core.imageio import to_tensor
from refsr.data.resize import degrade, upscale
from refsr.matching.approximate import ApproxConfig, match_approximate


def exact_patch_scores(content: torch.Tensor, refs: list[torch.Tensor], patch: int = 3) -> torch.Tensor:
    """Full ``N_content x N_ref`` S* matrix (naive reference, small inputs only)."""
    r = patch // 2
    cp = F.unfold(content[None], patch, padding=r)[0]
    rp = torch.cat([F.unfold(ref[None], patch)[0] for ref in refs], dim=1)
    return cp.T @ (rp / rp.norm(dim=0).clamp_min(S.EPS))


def random_case(seed: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    content = torch.randn(12, 14, 13, dtype=dtype, generator=g)
    refs = [torch.randn(12, 11, 15, dtype=dtype, generator=g), torch.randn(12, 7, 6, dtype=dtype, generator=g)]
    return content, refs


# ----------------------------------------------------------------------------- exact when configured so


@pytest.mark.parametrize("cfg", [
    dict(dims=0, cluster_size=10**6),                  # full patches, one cluster
    dict(dims=8, cluster_size=10**6, rescore=10**6),   # reduced, but every candidate re-scored
    dict(dims=8, cluster_size=4, probes=10**6, rescore=10**6, probe_margin=0),  # many clusters, all probed
])
def test_configured_exact_equals_exact(cfg):
    for seed in range(3):
        content, refs = random_case(seed)
        exact = S.match(content, refs)
        approx = S.match(content, refs, mode="approximate", approx=cfg)
        assert torch.equal(approx.index, exact.index)
        torch.testing.assert_close(approx.score, exact.score)
        torch.testing.assert_close(approx.cosine, exact.cosine)
        assert approx.ref_shapes == exact.ref_shapes


def test_ties_go_to_first_index_when_exact():
    g = torch.Generator().manual_seed(1)
    sign = lambda *shape: torch.randint(0, 2, shape, generator=g).double() * 2 - 1  # noqa: E731
    content, refs = sign(4, 10, 9), [sign(4, 7, 8), sign(4, 5, 6)]
    exact = S.match(content, refs, patch=1)
    approx = match_approximate(content, refs, patch=1, config=dict(dims=0, cluster_size=10**6))
    assert torch.equal(approx.index, exact.index)


def test_scores_are_exact_for_the_chosen_candidates():
    content, refs = random_case(5)
    full = exact_patch_scores(content, refs)
    corr = match_approximate(content, refs, config=dict(dims=6, cluster_size=8, probes=2))
    chosen = full.gather(1, corr.index.reshape(-1, 1))[:, 0]
    torch.testing.assert_close(corr.score.reshape(-1), chosen)
    assert (corr.score.reshape(-1) <= full.max(1).values + 1e-9).all()


def test_small_budget_same_result():
    content, refs = random_case(6, torch.float32)
    cfg = dict(dims=12, cluster_size=6, probes=3, rescore=2)
    a = match_approximate(content, refs, max_mb=256, config=cfg)
    b = match_approximate(content, refs, max_mb=0.001, config=cfg)
    assert torch.equal(a.index, b.index)
    torch.testing.assert_close(a.score, b.score)


def test_deterministic():
    content, refs = random_case(7, torch.float32)
    a = match_approximate(content, refs, config=dict(dims=16, cluster_size=8))
    b = match_approximate(content, refs, config=dict(dims=16, cluster_size=8))
    assert torch.equal(a.index, b.index) and torch.equal(a.score, b.score)


# ----------------------------------------------------------------------------- config


def test_config_validation():
    base = defaults("matching.approximate")
    assert ApproxConfig.from_any(None) == ApproxConfig(**base)  # the schema's defaults
    assert ApproxConfig.from_any({"probes": 4}).probes == 4
    cfg = ApproxConfig(**{**base, "dims": 32})
    assert ApproxConfig.from_any(cfg) is cfg
    with pytest.raises(ValueError, match="unknown"):
        ApproxConfig.from_any({"prob": 4})
    with pytest.raises(ValueError, match="probes"):
        ApproxConfig(**{**base, "probes": 0})
    with pytest.raises(ValueError, match="dims"):
        ApproxConfig(**{**base, "dims": -1})
    with pytest.raises(ValueError, match="probe_margin"):
        ApproxConfig(**{**base, "probe_margin": -0.1})
    with pytest.raises(RefsrError, match="mode"):
        S.match(torch.rand(4, 5, 5), [torch.rand(4, 5, 5)], mode="fast")


# ----------------------------------------------------------------------------- real features




@pytest.mark.parametrize("photo, ref_photo", [("chelsea", "chelsea"), ("astronaut", "coffee")])
def test_default_config_keeps_99_percent_of_s_star(vgg, photo, ref_photo):
    """Default approximate mode on a 160x160 pair (1,600 positions vs 1,600+ candidates)."""
    img = getattr(data, photo)()
    hr = img[40:200, 60:220]
    ref_img = getattr(data, ref_photo)()
    ref = ref_img[20:196, 30:206] if photo == ref_photo else ref_img[100:276, 200:376]
    _, lr = degrade(hr, 4)
    lr_up, ref_t = to_tensor(upscale(lr, 4)), to_tensor(ref)
    exact = S.correspond(lr_up, [ref_t], vgg)
    approx = S.correspond(lr_up, [ref_t], vgg, mode="approximate")
    assert approx.index.shape == exact.index.shape
    assert approx.score.mean() >= 0.99 * exact.score.mean()
    assert (approx.score <= exact.score + 1e-3).all()  # exact S* is the maximum
    assert approx.cosine.mean() >= 0.99 * exact.cosine.mean()


def test_super_resolver_and_cli_match_mode(tmp_path, vgg_weights):
    from conftest import arch as arch_section
    from PIL import Image

    from refsr.cli import main
    from refsr.core.errors import RefsrError
    from refsr.inference.resolver import SuperResolver
    from refsr.models.checkpoint import build_model, save_checkpoint

    arch = arch_section(n_blocks=1, n_feats=8, n_blocks_transfer=[1, 1, 1])
    torch.manual_seed(0)
    model = build_model("srntt", arch)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    ckpt = tmp_path / "srntt.pt"
    save_checkpoint(ckpt, model, "srntt", arch)
    photo = data.astronaut()
    ref = photo[90:150, 190:260].copy()
    lr = np.ascontiguousarray(photo[100:116, 200:220])
    exact = SuperResolver(str(ckpt), tile=0)(lr, [ref])
    fast = SuperResolver(str(ckpt), tile=0, match_mode="approximate", approx={"probes": 2})(lr, [ref])
    assert fast.shape == exact.shape == (64, 80, 3)
    assert np.abs(fast.astype(int) - exact.astype(int)).mean() < 2  # an untrained net: nearly bicubic
    with pytest.raises(RefsrError, match="mode"):
        SuperResolver(None, model="bicubic", match_mode="fast")

    Image.fromarray(lr).save(tmp_path / "lr.png")
    Image.fromarray(ref).save(tmp_path / "ref.png")
    assert main(["sr", "--lr", str(tmp_path / "lr.png"), "--ref", str(tmp_path / "ref.png"), "--checkpoint",
                 str(ckpt), "--out", str(tmp_path / "sr.png"), "--match-mode", "approximate"]) == 0
    assert Image.open(tmp_path / "sr.png").size == (80, 64)

"""What the levels and models of one image share (refsr.matching.cache) changes the time, never the
outputs: the merged per-reference searches equal one joint scan, cached transfers and TTSR textures
equal fresh ones, and one pass of several models writes what separate jobs write."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import small_checkpoint

from refsr.bench.cufed5 import build_set, compare_outputs
from refsr.core.imageio import to_tensor
from refsr.data.resize import down_up, upscale
from refsr.inference.resolver import SuperResolver
from refsr.matching.cache import FeatureCache, combine, key_of
from refsr.matching.exact import match_exact, match_exact_bands
from refsr.matching.transfer import _candidate_bands, extract_features, transfer
from refsr.stages.infer import run_inference


def test_combined_searches_equal_the_joint_scan():
    g = torch.Generator().manual_seed(0)
    content = torch.randn(16, 9, 11, generator=g)
    refs = [torch.randn(16, 7, 8, generator=g), torch.randn(16, 10, 6, generator=g)]
    refs.append(refs[0].clone())  # an identical reference: every tie goes to the first
    joint = match_exact(content, refs, max_mb=0.05)
    merged = combine([match_exact(content, [r], max_mb=0.05) for r in refs])
    assert torch.equal(joint.index, merged.index) and torch.equal(joint.score, merged.score)
    assert torch.equal(joint.cosine, merged.cosine) and joint.ref_shapes == merged.ref_shapes


def test_cache_budget_and_keys():
    cache = FeatureCache(max_mb=1)
    calls = []
    big = lambda: calls.append(1) or torch.zeros(2**20)  # noqa: E731 - 4 MB: over the budget, not kept
    cache.get(("a",), big)
    cache.get(("a",), big)
    assert len(calls) == 2 and len(cache) == 0
    small = cache.get(("b",), lambda: torch.ones(10))
    assert cache.get(("b",), lambda: None) is small and cache.hits == 1
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 1
    assert key_of(a) == key_of(a.copy()) != key_of(b) != key_of(a.astype(np.int16))
    assert key_of(torch.zeros(3)) != key_of(torch.zeros(1, 3))


def test_cached_transfer_equals_fresh_and_the_joint_scan(vgg, rng):
    import skimage.data

    photo = skimage.data.astronaut()
    lr_up = to_tensor(upscale(photo[100:125, 200:230], 4), "cpu")
    refs = [photo[0:70, 0:90], photo[200:260, 300:380], photo[:64, 100:160]]
    dus = [down_up(r) for r in refs]
    cache = FeatureCache(512)
    for sel in ([0], [1], [0, 1, 2], [2]):  # levels of one image: each reference, then ALL
        corr_c, maps_c = transfer(lr_up, [refs[i] for i in sel], vgg, max_mb=4,
                                  refs_down_up=[dus[i] for i in sel], cache=cache)
        corr_f, maps_f = transfer(lr_up, [refs[i] for i in sel], vgg, max_mb=4, refs_down_up=[dus[i] for i in sel])
        assert torch.equal(corr_c.index, corr_f.index)
        for k in maps_f:
            assert torch.equal(maps_c[k], maps_f[k]), k
    assert cache.hits > 0
    # the merged per-reference searches are the joint scan over all bands (the path before the cache)
    content = extract_features(vgg, lr_up, ("relu3_1",))["relu3_1"]
    shapes = [(r.shape[0] // 4, r.shape[1] // 4) for r in refs]
    joint = match_exact_bands(content, _candidate_bands(vgg, dus, shapes, 4, "cpu", 3, ["a", "b", "c"]),
                              shapes, max_mb=2)
    corr, _ = transfer(lr_up, refs, vgg, max_mb=4, refs_down_up=dus, cache=cache)
    assert torch.equal(joint.index, corr.index) and torch.equal(joint.score, corr.score)


def _ckpt(tmp_path, name):
    return small_checkpoint(tmp_path, name)


def test_ttsr_cached_textures_equal_the_networks_own(tmp_path, vgg_weights):
    import skimage.data

    res = SuperResolver(_ckpt(tmp_path, "ttsr_rec"), model="ttsr_rec", tile=0)
    res.cache = FeatureCache(256)
    photo = skimage.data.astronaut()
    lrsr = to_tensor(upscale(photo[100:120, 200:224], 4), "cpu") * 2 - 1
    refs = [to_tensor(photo[0:64, 0:80], "cpu") * 2 - 1, to_tensor(photo[200:248, 300:360], "cpu") * 2 - 1]
    refs_sr = [to_tensor(down_up(photo[0:64, 0:80]), "cpu") * 2 - 1,
               to_tensor(down_up(photo[200:248, 300:360]), "cpu") * 2 - 1]
    for sel in ([0], [1], [0, 1]):
        ours = res._textures(lrsr, [refs[i] for i in sel], [refs_sr[i] for i in sel])
        own = res.net.textures(lrsr, [refs[i] for i in sel], [refs_sr[i] for i in sel])
        for k in own:
            assert torch.equal(ours[k], own[k]), (sel, k)


@pytest.mark.slow
def test_one_pass_of_several_models_writes_what_separate_jobs_write(tmp_path, vgg_weights):
    ds, lr_dir, tiers = build_set(tmp_path / "data", 2, size_scale=0.16)
    models = ["srntt_l2", "srntt", "ttsr_rec"]
    ckpts = {m: _ckpt(tmp_path, m) for m in models}
    levels = ["L1", "L3", "ALL", "LR", "HR"]
    times = []
    n = run_inference(ds, lr_dir, tiers, [SuperResolver(ckpts[m], model=m, tile=0) for m in models],
                      [tmp_path / "one" / m for m in models], levels, on_image=lambda *a: times.append(a))
    assert n == len(times) == 2 * len(levels) * len(models)
    for m in models:
        run_inference(ds, lr_dir, tiers, SuperResolver(ckpts[m], model=m, tile=0), tmp_path / "sep" / m, levels,
                      cache_mb=0)
    same = compare_outputs(tmp_path / "sep", tmp_path / "one")
    assert same["images_compared"] == n and same["differing_values"] == 0

"""SRNTT matching/swapping: streaming vs a naive full-matrix reference, known shifts, memory."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import spy_score_blocks
from skimage import data

from refsr import matching as S
from refsr.core.errors import RefsrError
from refsr.core.imageio import to_tensor
from refsr.data.resize import degrade, upscale
from refsr.matching import naive

# ----------------------------------------------------------------------------- references


def naive_match(content: torch.Tensor, refs: list[torch.Tensor], patch: int = 3):
    """The full-matrix reference (:mod:`refsr.matching.naive`): index, score, cosine."""
    corr = naive.naive_match(content, refs, patch)
    return corr.index, corr.score, corr.cosine


def naive_swap(corr: S.Correspondence, maps: list[torch.Tensor], s: int) -> torch.Tensor:
    """Paste each matched (p*s)^2 patch with Python loops, clip at borders, average overlaps."""
    H, W = corr.index.shape
    p = corr.patch
    k, r = p * s, p // 2
    C = maps[0].shape[0]
    acc = torch.zeros(C, H * s, W * s, dtype=maps[0].dtype)
    cnt = torch.zeros(1, H * s, W * s, dtype=maps[0].dtype)
    rid = corr.ref_id
    gy, gx = corr.grid_pos
    for y in range(H):
        for x in range(W):
            src = maps[int(rid[y, x])][:, int(gy[y, x]) * s:int(gy[y, x]) * s + k,
                                       int(gx[y, x]) * s:int(gx[y, x]) * s + k]
            for i in range(k):
                for j in range(k):
                    oy, ox = (y - r) * s + i, (x - r) * s + j
                    if 0 <= oy < H * s and 0 <= ox < W * s:
                        acc[:, oy, ox] += src[:, i, j]
                        cnt[:, oy, ox] += 1
    return acc / cnt


def identity_corr(ref_shapes, target: int, H: int, W: int, patch: int = 3) -> S.Correspondence:
    """Content (y, x) -> patch centred at (y, x) (clamped) of reference ``target``."""
    dummy = S.Correspondence(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 1), tuple(ref_shapes), patch=patch)
    gh, gw = dummy.grid_shapes[target]
    r = patch // 2
    gy = (torch.arange(H) - r).clamp(0, gh - 1)
    gx = (torch.arange(W) - r).clamp(0, gw - 1)
    index = dummy.offsets[target] + gy[:, None] * gw + gx[None, :]
    return S.Correspondence(index, torch.ones(H, W), tuple(ref_shapes), patch=patch)


# ----------------------------------------------------------------------------- fixtures




# Content: a 128x128 crop of chelsea; the reference is a bigger crop whose origin is shifted
# by (-12, -8) px, so content pixel (y, x) sits at (y + 12, x + 8) in the reference.
Y0, X0, SIZE, DY, DX = 100, 150, 128, 12, 8


@pytest.fixture(scope="module")
def shifted_pair():
    img = data.chelsea()
    hr = img[Y0:Y0 + SIZE, X0:X0 + SIZE]
    ref = img[Y0 - DY:Y0 - DY + SIZE + 32, X0 - DX:X0 - DX + SIZE + 32]
    _, lr = degrade(hr, 4)
    return to_tensor(hr), to_tensor(upscale(lr, 4)), to_tensor(ref)


def shift_hits(corr: S.Correspondence, ref_id: int, margin: int = 2) -> float:
    """Fraction of interior positions matched to ``ref_id`` at the true (DY/4, DX/4) shift."""
    H, W = corr.index.shape
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    py, px = corr.pos
    ok = (py == yy + DY // 4) & (px == xx + DX // 4) & (corr.ref_id == ref_id)
    return ok[margin:H - margin, margin:W - margin].float().mean().item()


# ----------------------------------------------------------------------------- matching


def test_streaming_equals_naive_many_chunks():
    g = torch.Generator().manual_seed(0)
    content = torch.randn(8, 13, 11, dtype=torch.float64, generator=g)
    refs = [torch.randn(8, 9, 12, dtype=torch.float64, generator=g),
            torch.randn(8, 6, 5, dtype=torch.float64, generator=g)]
    max_mb = 0.01
    rc, rr = S.band_rows(13, 11, 9, 12, 3, max_mb, 8)
    assert rc < 13 and rr < 7  # many blocks both ways
    corr = S.match(content, refs, max_mb=max_mb)
    index, score, cosine = naive_match(content, refs)
    assert torch.equal(corr.index, index)
    torch.testing.assert_close(corr.score, score)
    torch.testing.assert_close(corr.cosine, cosine)
    assert corr.ref_shapes == ((9, 12), (6, 5)) and corr.offsets == (0, 70, 82)
    assert set(corr.ref_id.unique().tolist()) == {0, 1}


def test_ties_go_to_first_index():
    """±1 features, patch 1: every score is exact and ties are everywhere."""
    g = torch.Generator().manual_seed(1)
    sign = lambda *shape: torch.randint(0, 2, shape, generator=g).double() * 2 - 1  # noqa: E731
    content, refs = sign(4, 10, 9), [sign(4, 7, 8), sign(4, 5, 6)]
    index, _, _ = naive_match(content, refs, patch=1)
    for max_mb in (0.002, 0.01, 256):
        assert torch.equal(S.match(content, refs, patch=1, max_mb=max_mb).index, index)


def test_known_shift_recovered(vgg, shifted_pair):
    _, lr_up, ref = shifted_pair
    corr = S.correspond(lr_up, [ref], vgg)
    assert corr.index.shape == (SIZE // 4, SIZE // 4)
    assert corr.ref_shapes == (((SIZE + 32) // 4, (SIZE + 32) // 4),)
    assert shift_hits(corr, 0) >= 0.95
    assert 0.5 < corr.cosine.mean() <= 1 + 1e-5


def test_right_reference_picked(vgg, shifted_pair):
    _, lr_up, ref = shifted_pair
    unrelated = to_tensor(data.astronaut()[:150, :170])
    corr = S.correspond(lr_up, [unrelated, ref], vgg)
    H, W = corr.index.shape
    assert (corr.ref_id[2:H - 2, 2:W - 2] == 1).float().mean() >= 0.95
    assert shift_hits(corr, 1) >= 0.95


def test_prepared_refs_and_small_reference(vgg, shifted_pair):
    _, lr_up, ref = shifted_pair
    a = S.correspond(lr_up, [ref], vgg)
    b = S.correspond(lr_up, [ref], vgg, refs_down_up=[S.ref_down_up(ref)])
    assert torch.equal(a.index, b.index)
    with pytest.raises(RefsrError, match="reference.*smaller than"):
        S.correspond(lr_up, [ref[..., :11, :40]], vgg)
    with pytest.raises(RefsrError, match="reference.*smaller than"):
        S.match(torch.rand(4, 5, 5), [torch.rand(4, 2, 9)])


# ----------------------------------------------------------------------------- swapping


def test_swap_matches_naive_paste():
    g = torch.Generator().manual_seed(2)
    shapes = ((5, 7), (4, 4))
    index = torch.randint(0, 5 * 3 + 2 * 2, (6, 5), generator=g)
    corr = S.Correspondence(index, torch.ones(6, 5), shapes)
    feats = [{layer: torch.randn(3, h * s + 1, w * s, dtype=torch.float64, generator=g)
              for layer, s in S.SWAP_SCALES.items()} for h, w in shapes]
    out = S.swap(corr, feats, max_mb=0.001)  # forces one content row per band
    for layer, s in S.SWAP_SCALES.items():
        expected = naive_swap(corr, [f[layer] for f in feats], s)
        torch.testing.assert_close(out[layer][0], expected)


@pytest.mark.parametrize("max_mb", [0.001, 256])  # banded and single-call stitching
def test_swap_batch_equals_per_sample(max_mb):
    g = torch.Generator().manual_seed(5)
    B, (H, W), (h3, w3) = 3, (6, 7), (5, 8)
    corrs = [S.Correspondence(torch.randint(0, 3 * 6, (H, W), generator=g), torch.rand(H, W, generator=g),
                              ((h3, w3),)) for _ in range(B)]
    feats = {layer: torch.randn(B, 4, h3 * s + 1, w3 * s + 2, generator=g) for layer, s in S.SWAP_SCALES.items()}
    out = S.swap_batch(corrs, feats, out_hw=(4 * H + 2, 4 * W + 3), max_mb=max_mb)
    for b, corr in enumerate(corrs):
        one = S.swap(corr, [{k: v[b] for k, v in feats.items()}], out_hw=(4 * H + 2, 4 * W + 3))
        for layer, s in S.SWAP_SCALES.items():
            assert out[layer].shape == (B, 4, (4 * H + 2) * s // 4, (4 * W + 3) * s // 4)
            torch.testing.assert_close(out[layer][b], one[layer][0])
            expected = naive_swap(corr, [feats[layer][b]], s)
            torch.testing.assert_close(one[layer][0, :, :H * s, :W * s], expected)
    with pytest.raises(ValueError, match="same shapes"):
        S.swap_batch([corrs[0], S.Correspondence(corrs[1].index, corrs[1].score, ((h3, w3 + 1),))], feats)


def test_channels_last_inputs_give_the_same_result():
    g = torch.Generator().manual_seed(6)
    content, ref = torch.randn(8, 9, 10, generator=g), torch.randn(8, 11, 12, generator=g)
    cl = lambda t: t[None].contiguous(memory_format=torch.channels_last)[0]  # noqa: E731
    a, b = S.match(content, [ref]), S.match(cl(content), [cl(ref)])
    assert torch.equal(a.index, b.index)
    torch.testing.assert_close(a.score, b.score)
    feats = {layer: torch.randn(5, 11 * s, 12 * s, generator=g) for layer, s in S.SWAP_SCALES.items()}
    m1 = S.swap(a, [feats])
    m2 = S.swap(a, [{k: cl(v) for k, v in feats.items()}])
    for layer in S.SWAP_SCALES:
        torch.testing.assert_close(m1[layer], m2[layer])
        assert m1[layer].reshape(-1).numel() == m1[layer].numel()


def test_swap_shapes_and_identity(vgg, shifted_pair):
    hr, lr_up, ref = shifted_pair
    with torch.no_grad():
        phi_hr = vgg(hr)
        phi_junk = vgg(torch.rand(1, 3, 52, 44))
    H, W = phi_hr["relu3_1"].shape[-2:]
    shapes = [tuple(phi_junk["relu3_1"].shape[-2:]), (H, W)]
    corr = identity_corr(shapes, target=1, H=H, W=W)
    out = S.swap(corr, [phi_junk, phi_hr], out_hw=tuple(hr.shape[-2:]), max_mb=1)
    for layer, s in S.SWAP_SCALES.items():
        assert out[layer].shape == phi_hr[layer].shape
        m = 2 * s  # interior: every covering patch is the identity patch
        torch.testing.assert_close(out[layer][..., m:-m, m:-m], phi_hr[layer][..., m:-m, m:-m],
                                   rtol=1e-5, atol=1e-5)

    corr, maps = S.transfer(lr_up, [ref], vgg)
    assert {k: tuple(v.shape) for k, v in maps.items()} == {
        "relu3_1": (1, 256, 32, 32), "relu2_1": (1, 128, 64, 64), "relu1_1": (1, 64, 128, 128)}


def test_swap_output_size_not_multiple_of_4():
    corr = S.Correspondence(torch.zeros(3, 4, dtype=torch.long), torch.ones(3, 4), ((3, 3),))
    feats = [{layer: torch.rand(2, 3 * s, 3 * s) for layer, s in S.SWAP_SCALES.items()}]
    out = S.swap(corr, feats, out_hw=(15, 19))
    assert out["relu3_1"].shape[-2:] == (3, 4)
    assert out["relu2_1"].shape[-2:] == (7, 9)
    assert out["relu1_1"].shape[-2:] == (15, 19)


# ----------------------------------------------------------------------------- cache


def test_save_load_roundtrip(tmp_path):
    g = torch.Generator().manual_seed(3)
    corr = S.match(torch.rand(16, 40, 40, generator=g), [torch.rand(16, 40, 40, generator=g)])
    for name in ("pair.npz", "pair.corr"):
        S.save_correspondence(tmp_path / name, corr)
        back = S.load_correspondence(tmp_path / name)
        assert torch.equal(back.index, corr.index) and back.index.dtype == torch.int64
        torch.testing.assert_close(back.score, corr.score, rtol=1e-3, atol=1e-3)
        assert back.ref_shapes == corr.ref_shapes and back.patch == corr.patch
        torch.testing.assert_close(back.cosine, corr.cosine, rtol=1e-3, atol=1e-3)  # fp16
    without = dataclasses.replace(corr, cosine=None)  # files without the cosine still load
    S.save_correspondence(tmp_path / "old.npz", without)
    assert S.load_correspondence(tmp_path / "old.npz").cosine is None
    (tmp_path / "old.npz").unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pair.corr", "pair.npz"]  # no temporaries
    assert (tmp_path / "pair.npz").stat().st_size < 16_000  # kilobytes per 160x160 pair

    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(RefsrError, match="bad.npz"):
        S.load_correspondence(tmp_path / "bad.npz")


# ----------------------------------------------------------------------------- memory


def test_match_blocks_respect_budget(monkeypatch):
    """Record every score block :func:`match_exact` computes; each must fit in ``max_mb``."""
    seen = spy_score_blocks(monkeypatch)
    C, max_mb, (H, W), (Hr, Wr) = 16, 0.2, (20, 20), (24, 22)
    g = torch.Generator().manual_seed(4)
    corr = S.match(torch.rand(C, H, W, generator=g), [torch.rand(C, Hr, Wr, generator=g)], max_mb=max_mb)
    assert len(seen) > 4  # the budget forced blocking
    assert all(4 * (na * nb + ni * nj) <= max_mb * 2**20 for na, nb, ni, nj in seen)
    rc, rr = S.band_rows(H, W, Hr, Wr, 3, max_mb)
    assert S.band_bytes(rc, rr, W, Wr) <= max_mb * 2**20
    pw, gw = W + 2, Wr - 2
    pairs = sum(((ni - W) // pw + 1) * W * ((nj - gw) // Wr + 1) * gw for _, _, ni, nj in seen)
    assert pairs == (H * W) * (Hr - 2) * gw  # every pair scored once
    assert corr.index.shape == (H, W)


@pytest.mark.parametrize("size", [(1, 1, 3, 3), (5, 300, 4, 7), (300, 2, 40, 400), (125, 83, 125, 83)])
@pytest.mark.parametrize("max_mb", [0.01, 1, 256])
def test_band_rows_respect_budget(size, max_mb):
    H, W, Hr, Wr = size
    rc, rr = S.band_rows(H, W, Hr, Wr, 3, max_mb)
    assert 1 <= rc <= H and 1 <= rr <= Hr - 2
    if (rc, rr) != (1, 1):
        assert S.band_bytes(rc, rr, W, Wr) <= max_mb * 2**20


# ----------------------------------------------------------------------------- training cache


def test_batched_cache_equals_per_pair_correspond(tmp_path, vgg):
    from refsr.core.imageio import read_image
    from refsr.data import build_to
    from refsr.data.lr import lr_path, write_lr
    from refsr.data.resize import down_up
    from refsr.training.data import build_correspondence_cache, correspondence_path

    cfg = dict(kind="embedded", test_photos=["astronaut"], train_photos=["brick", "retina"],
               hr_size=48, train_size=48, train_pairs=5, seed=0)
    ds = build_to("tiny", cfg, tmp_path / "tiny", 4)
    write_lr(ds, tmp_path / "tiny" / "lr")
    build_correspondence_cache(ds, tmp_path / "tiny" / "lr", tmp_path / "corr", vgg, batch_size=3)
    for pair in ds.train:
        lr = read_image(lr_path(tmp_path / "tiny" / "lr", "train", pair.name))
        ref = read_image(pair.ref)
        one = S.correspond(to_tensor(upscale(lr, 4)), [to_tensor(ref)], vgg,
                           refs_down_up=[to_tensor(down_up(ref, 4))])
        cached = S.load_correspondence(correspondence_path(tmp_path / "corr", pair.name))
        assert (cached.index == one.index).float().mean() >= 0.99  # batched VGG: fp-level differences only
        torch.testing.assert_close(cached.score, one.score, rtol=2e-3, atol=2e-3)

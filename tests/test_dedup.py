"""The exact search skips candidates that repeat an earlier one bit for bit
(:func:`refsr.matching.exact.first_occurrences`, :func:`~refsr.matching.exact.row_segments`):
indices, scores and cosines stay bit-identical to searching every candidate."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from conftest import spy_score_blocks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refsr.matching.exact as exact
from refsr.core.imageio import to_tensor
from refsr.data.resize import down_up
from refsr.inference.levels import stitch_references
from refsr.matching import relevance
from refsr.matching.exact import first_occurrences, match_exact, match_exact_bands, row_segments
from refsr.matching.patches import pixel_rows
from refsr.matching.transfer import _candidate_bands, extract_features

#: Canvas side of the stitched test references (500 in CUFED5).
SIDE = 160
PROPERTY = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True, scope="module")
def dedup_at_any_size():
    """The maps here are small: search them for repeats whatever their size (the search does so
    only from exact.DEDUP_MIN_CANDIDATES candidates on; test_small_maps_are_not_deduplicated)."""
    saved, exact.DEDUP_MIN_CANDIDATES = exact.DEDUP_MIN_CANDIDATES, 0
    yield
    exact.DEDUP_MIN_CANDIDATES = saved


def test_small_maps_are_not_deduplicated(monkeypatch):
    """Below the threshold no repeats are looked for (TTSR's training samples: nothing to skip)."""
    monkeypatch.setattr(exact, "DEDUP_MIN_CANDIDATES", 10_000)
    calls = []
    monkeypatch.setattr(exact, "first_occurrences", lambda *a, **k: calls.append(1) or first_occurrences(*a, **k))
    ref = torch.zeros(4, 40, 40)
    content = torch.rand(4, 6, 6)
    _same(match_exact(content, [ref]), match_exact(content, [ref], dedup=False))
    assert calls == []
    monkeypatch.setattr(exact, "DEDUP_MIN_CANDIDATES", 0)
    match_exact(content, [ref])
    assert calls == [1]


def _same(a, b) -> None:
    assert torch.equal(a.index, b.index)
    assert torch.equal(a.score, b.score)
    assert torch.equal(a.cosine, b.cosine)
    assert a.ref_shapes == b.ref_shapes


def _searched(ref: torch.Tensor, patch: int = 3) -> tuple[int, int, list]:
    """(candidates searched, all candidates, segments) of one reference map."""
    C, H, W = ref.shape
    keep = first_occurrences(pixel_rows(ref), H, W, patch)
    segs = row_segments(keep)
    return sum((g1 - g0) * w for g0, g1, w in segs), keep.numel(), segs


def _features(vgg, img: np.ndarray) -> torch.Tensor:
    return extract_features(vgg, to_tensor(img), ("relu3_1",))["relu3_1"][0]


def _photos():
    return (skimage.data.astronaut()[100:200, 100:260],  # 160 x 100 landscape
            skimage.data.coffee()[50:210, 200:300],      # 100 x 160 portrait
            skimage.data.chelsea()[60:140, 150:310])     # 160 x 80 landscape


def _content(vgg) -> torch.Tensor:
    return _features(vgg, down_up(skimage.data.rocket()[100:164, 200:296]))


# ----------------------------------------------------------------------------- real features


def test_stitched_reference_equals_full_search(vgg):
    """Black canvases between the pictures (duplicates in the middle) and to the right of the
    portrait one (cropped columns): some candidates are skipped, the result is the same."""
    stitched = stitch_references(list(_photos()), side=SIDE)
    ref = _features(vgg, down_up(stitched))
    content = _content(vgg)
    searched, total, segs = _searched(ref)
    gw = ref.shape[2] - 2
    assert searched < 0.9 * total  # rows skipped ...
    assert any(w < gw for _, _, w in segs)  # ... and columns cropped
    assert segs[0][0] == 0 and segs[1][0] > segs[0][1]  # rows skipped after the first picture
    for max_mb in (256, 0.2):  # one block per segment; many blocks
        _same(match_exact(content, [ref], max_mb=max_mb), match_exact(content, [ref], max_mb=max_mb, dedup=False))
    # several references: the stitched map's duplicates sit after a reference without any
    other = _features(vgg, down_up(skimage.data.coffee()[:64, :64]))
    _same(match_exact(content, [other, ref, other]), match_exact(content, [other, ref, other], dedup=False))


def test_duplicates_at_the_start_and_none(vgg):
    content = _content(vgg)
    top = np.zeros((96, 96, 3), np.uint8)
    top[56:, 20:] = skimage.data.astronaut()[:40, :76]  # black above: the first rows repeat row 0
    ref = _features(vgg, down_up(top))
    searched, total, segs = _searched(ref)
    assert searched < total and segs[0][0] == 0 and segs[1][0] > segs[0][1]  # rows right after row 0 skipped
    _same(match_exact(content, [ref]), match_exact(content, [ref], dedup=False))
    photo = _features(vgg, down_up(skimage.data.rocket()[:96, :128]))
    searched, total, segs = _searched(photo)
    assert searched == total and segs == [(0, photo.shape[1] - 2, photo.shape[2] - 2)]  # a photo: nothing repeats
    _same(match_exact(content, [photo]), match_exact(content, [photo], dedup=False))


def test_streamed_bands_equal_full_search(vgg):
    """The inference path: φ(Ref↓↑) of the stitched image in bands (duplicates found per band)."""
    stitched = stitch_references(list(_photos()), side=SIDE)
    du = down_up(stitched)
    content = _content(vgg)
    shapes = [(du.shape[0] // 4, du.shape[1] // 4)]
    bands = list(_candidate_bands(vgg, [du], shapes, 1, "cpu", 3, ["stitched"]))
    assert len(bands) > 2
    searched = sum(_searched(b)[0] for _, _, b in bands)
    assert searched < 0.9 * sum(_searched(b)[1] for _, _, b in bands)
    got = match_exact_bands(content, iter(bands), shapes, max_mb=0.5)
    _same(got, match_exact_bands(content, iter(bands), shapes, max_mb=0.5, dedup=False))


def test_ttsr_relevance_search_equals_full_search(vgg):
    """TTSR's search (the zero-padded level-3 map through the same exact search) dedups too."""
    ref = _features(vgg, down_up(stitch_references(list(_photos()), side=SIDE)))
    content = _content(vgg)
    searched, total, _ = _searched(F.pad(ref, (1, 1, 1, 1)))
    assert searched < 0.9 * total
    got = relevance.search(content, [ref])
    _same(got, match_exact(content, [F.pad(ref, (1, 1, 1, 1))], dedup=False))


# ----------------------------------------------------------------------------- memory


def test_cropped_blocks_respect_budget(monkeypatch):
    """A column-cropped segment copies its block's pixel rows: counted in ``max_mb``."""
    seen = spy_score_blocks(monkeypatch)
    C, max_mb = 16, 0.2
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(C, 30, 24, generator=g)
    ref[:, :, 12:] = 0.5  # constant on the right: every row's segment is cropped
    content = torch.rand(C, 20, 20, generator=g)
    _, _, segs = _searched(ref)
    assert all(w < 22 for _, _, w in segs)
    corr = match_exact(content, [ref], max_mb=max_mb)
    assert len(seen) > 4
    assert all(4 * (na * nb + ni * nj + nb * C) <= max_mb * 2**20 for na, nb, ni, nj in seen)
    _same(corr, match_exact(content, [ref], max_mb=max_mb, dedup=False))


# ----------------------------------------------------------------------------- property


def _brute_first(ref: torch.Tensor, p: int) -> torch.Tensor:
    C, H, W = ref.shape
    gh, gw = H - p + 1, W - p + 1
    bits = ref.contiguous().view(torch.int64 if ref.dtype == torch.float64 else torch.int32)
    patches = [bits[:, y:y + p, x:x + p] for y in range(gh) for x in range(gw)]
    first = [not any(torch.equal(patches[j], patches[k]) for k in range(j)) for j in range(len(patches))]
    return torch.tensor(first).view(gh, gw)


@st.composite
def planted(draw):
    p = draw(st.sampled_from([1, 3]))
    C = draw(st.integers(1, 3))
    H, W = draw(st.integers(p, 9)), draw(st.integers(p, 8))
    Hr, Wr = draw(st.integers(p, 14)), draw(st.integers(p, 10))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    # few distinct values (0.0 and -0.0 among them: equal, different bits), so ties and
    # accidental duplicates are common
    values = torch.tensor([0.0, -0.0, 1.0, -0.5, 0.25], dtype=dtype)
    ref = values[torch.randint(0, 5, (C, Hr, Wr), generator=g)]
    if draw(st.booleans()):
        ref = ref + torch.randn(C, Hr, Wr, generator=g, dtype=dtype) * draw(st.sampled_from([0.0, 1e-3, 1.0]))
    for _ in range(draw(st.integers(0, 3))):  # planted duplicate rows: a block copied further down
        n = draw(st.integers(1, Hr))
        src, dst = draw(st.integers(0, Hr - n)), draw(st.integers(0, Hr - n))
        ref[:, dst:dst + n] = ref[:, src:src + n].clone()
    if draw(st.booleans()):  # a constant region (a canvas) at the right or the bottom
        x0, y0 = draw(st.integers(0, Wr)), draw(st.integers(0, Hr))
        ref[:, y0:, x0:] = draw(st.sampled_from([0.0, 0.5]))
    content = values[torch.randint(0, 5, (C, H, W), generator=g)] + torch.randn(C, H, W, generator=g, dtype=dtype)
    max_mb = draw(st.sampled_from([1e-4, 2e-3, 256]))
    return content, ref, p, max_mb


@PROPERTY
@given(planted())
def test_dedup_property(case):
    content, ref, p, max_mb = case
    C, Hr, Wr = ref.shape
    keep = first_occurrences(pixel_rows(ref), Hr, Wr, p)
    assert torch.equal(keep, _brute_first(ref, p))
    segs = row_segments(keep)
    covered = torch.zeros_like(keep)
    for g0, g1, w in segs:
        covered[g0:g1, :w] = True
    assert bool((covered | ~keep).all())  # every first occurrence is searched
    got = match_exact(content, [ref], patch=p, max_mb=max_mb)
    _same(got, match_exact(content, [ref], patch=p, max_mb=max_mb, dedup=False))
    two = [ref, ref.flip(-1).contiguous()]
    _same(match_exact(content, two, patch=p, max_mb=max_mb), match_exact(content, two, patch=p, max_mb=max_mb,
                                                                          dedup=False))


@pytest.mark.parametrize("tol", [0, 1, 100])
def test_row_segments_cover_first_occurrences(tol):
    keep = torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], dtype=torch.bool)
    segs = row_segments(keep, tol)
    assert all(g1 <= 4 for _, g1, _ in segs) and not any(g0 <= 1 < g1 for g0, g1, _ in segs)
    covered = torch.zeros_like(keep)
    for g0, g1, w in segs:
        covered[g0:g1, :w] = True
    assert bool((covered | ~keep).all())
    if tol == 0:
        assert segs == [(0, 1, 1), (2, 3, 3), (3, 4, 4)]

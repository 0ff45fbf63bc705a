"""Exact SRNTT matching: blocked pixel products, shifted-slice patch scores, running max.

See the comment above :data:`BLOCK_SIDE` for how one pixel-level product gives every patch
score exactly; the ``N_content x N_ref`` score matrix is never built, nor any patch vector.
Candidates that repeat an earlier one bit for bit are not searched (see the comment above
:func:`first_occurrences`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from refsr.matching.correspondence import Correspondence
from refsr.matching.patches import (
    EPS,
    check_content,
    check_refs,
    finish,
    padded_rows,
    patch_norms,
    pixel_rows,
)

# ----------------------------------------------------------------------------- exact matching
#
# With content pixel rows c(q) (zero-padded map, width pw = W + 2r) and reference pixel rows
# ref(q) (width Wr), the score of content position i against candidate j is
#     S(i, j) = sum_k <c(i + oc_k), ref(j + or_k)> / |patch j|,
# k running over the p*p kernel offsets (oc_k = dy * pw + dx, or_k = dy * Wr + dx). So one
# pixel-level product P = c^T ref (C-deep, 1/p^2 of the patch-level FLOPs) and p*p shifted
# slice-adds of P give every patch score exactly. Content positions are indexed in the
# padded width (i = y * pw + x, columns x >= W are discarded) and candidates in the
# reference width (j = gy * Wr + gx, columns gx >= gw masked to -inf): then each shift is
# a plain 2-D slice of P and no patch vector is ever built.

#: Target rows/columns of one pixel-product block: big enough for an efficient GEMM, small
#: enough for the block and its score slice to stay in the last-level cache.
BLOCK_SIDE = 1536


def band_bytes(rc: int, rr: int, W: int, Wr: int, patch: int = 3, itemsize: int = 4,
               crop_channels: int = 0) -> int:
    """Peak extra bytes of one :func:`match_exact` block: ``rc`` content rows x ``rr`` candidate rows.

    The pixel product ``nA x nB``, the score slice ``ni x nj``, the candidate scale/mask
    vectors and the block max/argmax with their update temporaries; with ``crop_channels``
    (a column-cropped segment, see :func:`row_segments`) also the copy of the block's
    ``nB x C`` reference pixel rows.
    """
    r = patch // 2
    pw = W + 2 * r
    na, nb = (rc + patch - 1) * pw, (rr + patch - 1) * Wr
    ni, nj = (rc - 1) * pw + W, (rr - 1) * Wr + Wr - patch + 1
    return itemsize * (na * nb + ni * nj + 2 * nj + nb * crop_channels) + ni * (3 * itemsize + 3 * 8 + 1)


def band_rows(H: int, W: int, Hr: int, Wr: int, patch: int = 3, max_mb: float = 256,
              itemsize: int = 4, side: int = BLOCK_SIDE, crop_channels: int = 0) -> tuple[int, int]:
    """``(content_rows, candidate_rows)`` per block of :func:`match_exact`: about ``side`` positions
    a side, shrunk until :func:`band_bytes` fits in ``max_mb``; never below 1 x 1."""
    r = patch // 2
    pw, gh = W + 2 * r, Hr - patch + 1
    rc = max(1, min(H, side // pw))
    rr = max(1, min(gh, side // Wr))
    budget = max_mb * 2**20
    while band_bytes(rc, rr, W, Wr, patch, itemsize, crop_channels) > budget and (rc > 1 or rr > 1):
        if rc > 1 and (rc * pw >= rr * Wr or rr == 1):
            rc = max(1, rc * 3 // 4)
        else:
            rr = max(1, rr * 3 // 4)
    return rc, rr


@torch.no_grad()
def match_exact(content: Tensor, refs: list[Tensor], patch: int = 3, max_mb: float = 256,
                dedup: bool = True) -> Correspondence:
    """Exact SRNTT matching of every content position against all references' patches.

    ``content``: ``C x H x W`` (φ(LR↑) at relu3_1); ``refs``: list of ``C x Hr x Wr``
    (φ(Ref↓↑)), sizes free; channels-last maps need no copies. Streams over blocks (see
    :func:`band_rows`); deterministic, ties go to the lowest index. ``dedup``: skip the
    candidates that repeat an earlier candidate of the same reference bit for bit (see
    :func:`first_occurrences`; the result is the same, ``False`` searches them all).
    """
    content = check_content(content)
    refs = check_refs(content, refs, patch)
    shapes = [(int(r.shape[1]), int(r.shape[2])) for r in refs]
    return match_exact_bands(content, ((i, 0, r) for i, r in enumerate(refs)), shapes, patch, max_mb, dedup)


@torch.no_grad()
def match_exact_bands(content: Tensor, bands: Iterable[tuple[int, int, Tensor]],
                      ref_shapes: list[tuple[int, int]], patch: int = 3,
                      max_mb: float = 256, dedup: bool = True) -> Correspondence:
    """:func:`match_exact` over references that come in horizontal bands, so that no
    reference map need ever be whole (:func:`refsr.matching.transfer.transfer`).

    ``bands`` yields ``(i, g0, band)``: rows ``g0 .. g0 + n + patch - 2`` of reference ``i``'s
    ``C x Hr x Wr`` map (``ref_shapes[i] = (Hr, Wr)``), i.e. its patch-grid rows ``g0 .. g0 + n - 1``;
    every grid row exactly once, references in order, bands top to bottom. The result is
    :func:`match_exact`'s on the whole maps (same indices, ties to the lowest index). With
    ``dedup`` repeated candidates are found within each band (a repeat of a candidate in an
    earlier band is searched).
    """
    content = check_content(content)
    C, H, W = content.shape
    r = patch // 2
    pw = W + 2 * r
    padded = padded_rows(content, r)
    best = torch.full((H * pw,), -torch.inf, dtype=content.dtype, device=content.device)
    arg = torch.zeros(H * pw, dtype=torch.int64, device=content.device)
    offsets = [0]
    for hr, wr in ref_shapes:
        offsets.append(offsets[-1] + (hr - patch + 1) * (wr - patch + 1))
    for i, g0, band in bands:
        band = check_refs(content, [band], patch)[0]
        gw = ref_shapes[i][1] - patch + 1
        _scan_ref(padded, H, W, band, patch, max_mb, offsets[i] + g0 * gw, best, arg, dedup)
    return finish(content, padded, ref_shapes, best.view(H, pw)[:, :W], arg.view(H, pw)[:, :W], patch)


# ----------------------------------------------------------------------------- deduplication
#
# A stitched reference (ALL_STITCHED: references pasted into black canvases) holds thousands
# of candidates whose p x p feature patches are bit-for-bit the same (the canvas away from
# the image border and from the pictures' receptive fields). Equal patches get equal scores
# (same pixel vectors, same products, same sums, same norm), so among equal candidates only
# the first (lowest index) can win: the others can be dropped without changing any index or
# score. Equality is decided on the bits of the feature patches (never on the image being
# black); the search then runs over row segments (:func:`row_segments`): candidate rows none
# of whose first occurrences remain are skipped, and each segment is cropped after its last
# first occurrence; every first occurrence stays in the search.

_BITS = {2: torch.int16, 4: torch.int32, 8: torch.int64}
#: Fewer candidates than this: no search for repeats (finding them costs ~3 % of a search, and a
#: small map, e.g. a training sample of TTSR's search, has none worth skipping).
DEDUP_MIN_CANDIDATES = 8192


def first_occurrences(rows: Tensor, h: int, w: int, patch: int = 3) -> Tensor:
    """``(h-p+1) x (w-p+1)`` bools: whether each ``p x p`` patch of an ``h x w`` map (pixel rows
    ``(h*w) x C``) is the first, in row-major order, of the patches equal to it bit for bit.

    Pixels get class ids from their bits (``torch.unique`` over the rows: a sorted copy of the
    distinct pixel rows), patches from the ``p*p`` ids of their pixels (``torch.unique`` again)."""
    p = patch
    gh, gw = h - p + 1, w - p + 1
    bits = rows.contiguous().view(_BITS[rows.element_size()])
    pix = torch.unique(bits, dim=0, return_inverse=True)[1].view(h, w)
    if p == 1:
        cls = pix.reshape(-1)
    else:
        ids = torch.stack([pix[dy:dy + gh, dx:dx + gw] for dy in range(p) for dx in range(p)], dim=-1)
        cls = torch.unique(ids.view(-1, p * p), dim=0, return_inverse=True)[1]
    pos = torch.arange(gh * gw, device=rows.device)
    first = torch.full((int(cls.max()) + 1,), gh * gw, dtype=torch.int64, device=rows.device)
    first.scatter_reduce_(0, cls, pos, "amin")
    return (first[cls] == pos).view(gh, gw)


def row_segments(keep: Tensor, tol: int | None = None) -> list[tuple[int, int, int]]:
    """``(g0, g1, width)``: the candidate rows ``g0 .. g1 - 1``, columns ``0 .. width - 1`` to
    search so that every ``True`` of ``keep`` (``gh x gw``) is searched. Rows without one are
    skipped; each row's width runs to its last ``True``; a row joins the segment above when
    that adds at most ``tol`` candidates (default ``gw // 4``) to the search."""
    gw = keep.shape[1]
    tol = gw // 4 if tol is None else tol
    ext = (keep * torch.arange(1, gw + 1, device=keep.device)).amax(dim=1).tolist()  # last True + 1; 0: none
    segs: list[tuple[int, int, int]] = []
    for g, e in enumerate(ext):
        if e == 0:
            continue
        if segs and segs[-1][1] == g:
            g0, _, w = segs[-1]
            added = (e - w) * (g - g0) if e > w else w - e
            if added <= tol:
                segs[-1] = (g0, g + 1, max(w, e))
                continue
        segs.append((g, g + 1, e))
    return segs


# ----------------------------------------------------------------------------- blocks


def _score_block(pix: Tensor, ni: int, nj: int, shifts: list[tuple[int, int]],
                 scale: Tensor, mask: Tensor, out: Tensor) -> Tensor:
    """Patch scores ``ni x nj`` from a pixel product block: sum of shifted slices, x scale + mask."""
    (a0, b0), (a1, b1) = shifts[0], shifts[min(1, len(shifts) - 1)]
    if len(shifts) == 1:
        out.copy_(pix[a0:a0 + ni, b0:b0 + nj])
    else:
        torch.add(pix[a0:a0 + ni, b0:b0 + nj], pix[a1:a1 + ni, b1:b1 + nj], out=out)
        for a, b in shifts[2:]:
            out.add_(pix[a:a + ni, b:b + nj])
    return torch.addcmul(mask, out, scale, out=out)


def _scan_ref(padded: Tensor, H: int, W: int, ref: Tensor, patch: int, max_mb: float, base: int,
              best: Tensor, arg: Tensor, dedup: bool = True) -> None:
    """Update the running ``best``/``arg`` (content positions in padded width) with one reference
    (or band): its norms once, then each segment of :func:`row_segments` (the whole grid
    without ``dedup``)."""
    C, Hr, Wr = ref.shape
    p = patch
    gh, gw = Hr - p + 1, Wr - p + 1
    rows = pixel_rows(ref)
    inv = 1.0 / patch_norms(rows, Hr, Wr, p).clamp_min(EPS)  # gh x gw
    dedup = dedup and gh * gw >= DEDUP_MIN_CANDIDATES
    segs = row_segments(first_occurrences(rows, Hr, Wr, p)) if dedup else [(0, gh, gw)]
    grid = rows.view(Hr, Wr, C)
    for s0, s1, width in segs:
        _scan_segment(padded, H, W, grid[s0:s1 + p - 1, :width + p - 1], inv[s0:s1, :width], p, max_mb,
                      base + s0 * gw, gw, best, arg)


def _scan_segment(padded: Tensor, H: int, W: int, grid: Tensor, inv: Tensor, patch: int, max_mb: float,
                  base: int, stride: int, best: Tensor, arg: Tensor) -> None:
    """The blocks of one segment: ``grid`` (``Hs x Ws x C``, a view of the reference's pixels),
    ``inv`` its candidates' inverse norms; candidate ``(gy, gx)`` is numbered ``base + gy * stride + gx``."""
    Hs, Ws, C = grid.shape
    p, r = patch, patch // 2
    pw, gh, gw = W + 2 * r, Hs - p + 1, Ws - p + 1
    whole = grid.is_contiguous()  # full-width rows: the blocks are views, else copied
    scale = grid.new_zeros(gh, Ws)
    scale[:, :gw] = inv
    mask = grid.new_full((gh, Ws), -torch.inf)
    mask[:, :gw] = 0
    scale, mask = scale.view(-1), mask.view(-1)
    rc, rr = band_rows(H, W, Hs, Ws, p, max_mb, grid.element_size(), crop_channels=0 if whole else C)
    shifts = [(dy * pw + dx, dy * Ws + dx) for dy in range(p) for dx in range(p)]
    na_max, nb_max = (rc + p - 1) * pw, (rr + p - 1) * Ws
    pix_buf = grid.new_empty(na_max * nb_max)
    score_buf = grid.new_empty(((rc - 1) * pw + W) * ((rr - 1) * Ws + gw))
    crop_buf = None if whole else grid.new_empty(nb_max * C)
    for g0 in range(0, gh, rr):
        g1 = min(gh, g0 + rr)
        if whole:
            block_r = grid[g0:g1 + p - 1].reshape(-1, C)
        else:
            block_r = crop_buf[:(g1 + p - 1 - g0) * Ws * C].view(g1 + p - 1 - g0, Ws, C)
            block_r.copy_(grid[g0:g1 + p - 1])
            block_r = block_r.view(-1, C)
        nb, nj = block_r.shape[0], (g1 - g0 - 1) * Ws + gw
        prev = None  # pixel product of the previous content band: its last p-1 rows are reused
        for y0 in range(0, H, rc):
            y1 = min(H, y0 + rc)
            na, ni = (y1 - y0 + p - 1) * pw, (y1 - y0 - 1) * pw + W
            pix = pix_buf[:na * nb].view(na, nb)
            keep = 0
            if prev is not None and p > 1 and prev.shape[0] >= 2 * (p - 1) * pw:
                keep = (p - 1) * pw
                pix[:keep].copy_(prev[-keep:])
            torch.mm(padded[y0 * pw + keep:(y0 * pw + na)], block_r.T, out=pix[keep:])
            prev = pix
            scores = _score_block(pix, ni, nj, shifts, scale[g0 * Ws:g0 * Ws + nj],
                                  mask[g0 * Ws:g0 * Ws + nj], score_buf[:ni * nj].view(ni, nj))
            vals, idx = scores.max(dim=1)
            b, a = best[y0 * pw:y0 * pw + ni], arg[y0 * pw:y0 * pw + ni]
            better = vals > b  # strict: earlier blocks (lower indices) win ties
            b.copy_(torch.where(better, vals, b))
            a.copy_(torch.where(better, base + (idx // Ws + g0) * stride + idx % Ws, a))

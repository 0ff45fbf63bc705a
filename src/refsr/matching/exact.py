"""Exact SRNTT matching: blocked pixel products, shifted-slice patch scores, running max.

See the comment above :data:`BLOCK_SIDE` for how one pixel-level product gives every patch
score exactly; the ``N_content x N_ref`` score matrix is never built, nor any patch vector.
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


def band_bytes(rc: int, rr: int, W: int, Wr: int, patch: int = 3, itemsize: int = 4) -> int:
    """Peak extra bytes of one :func:`match_exact` block: ``rc`` content rows x ``rr`` candidate rows.

    The pixel product ``nA x nB``, the score slice ``ni x nj``, the candidate scale/mask
    vectors and the block max/argmax with their update temporaries.
    """
    r = patch // 2
    pw = W + 2 * r
    na, nb = (rc + patch - 1) * pw, (rr + patch - 1) * Wr
    ni, nj = (rc - 1) * pw + W, (rr - 1) * Wr + Wr - patch + 1
    return itemsize * (na * nb + ni * nj + 2 * nj) + ni * (3 * itemsize + 3 * 8 + 1)


def band_rows(H: int, W: int, Hr: int, Wr: int, patch: int = 3, max_mb: float = 256,
              itemsize: int = 4, side: int = BLOCK_SIDE) -> tuple[int, int]:
    """``(content_rows, candidate_rows)`` per block of :func:`match_exact`: about ``side`` positions
    a side, shrunk until :func:`band_bytes` fits in ``max_mb``; never below 1 x 1."""
    r = patch // 2
    pw, gh = W + 2 * r, Hr - patch + 1
    rc = max(1, min(H, side // pw))
    rr = max(1, min(gh, side // Wr))
    budget = max_mb * 2**20
    while band_bytes(rc, rr, W, Wr, patch, itemsize) > budget and (rc > 1 or rr > 1):
        if rc > 1 and (rc * pw >= rr * Wr or rr == 1):
            rc = max(1, rc * 3 // 4)
        else:
            rr = max(1, rr * 3 // 4)
    return rc, rr


@torch.no_grad()
def match_exact(content: Tensor, refs: list[Tensor], patch: int = 3, max_mb: float = 256) -> Correspondence:
    """Exact SRNTT matching of every content position against all references' patches.

    ``content``: ``C x H x W`` (φ(LR↑) at relu3_1); ``refs``: list of ``C x Hr x Wr``
    (φ(Ref↓↑)), sizes free; channels-last maps need no copies. Streams over blocks (see
    :func:`band_rows`); deterministic, ties go to the lowest index.
    """
    content = check_content(content)
    refs = check_refs(content, refs, patch)
    shapes = [(int(r.shape[1]), int(r.shape[2])) for r in refs]
    return match_exact_bands(content, ((i, 0, r) for i, r in enumerate(refs)), shapes, patch, max_mb)


@torch.no_grad()
def match_exact_bands(content: Tensor, bands: Iterable[tuple[int, int, Tensor]],
                      ref_shapes: list[tuple[int, int]], patch: int = 3,
                      max_mb: float = 256) -> Correspondence:
    """:func:`match_exact` over references that come in horizontal bands, so that no
    reference map need ever be whole (:func:`refsr.matching.transfer.transfer`).

    ``bands`` yields ``(i, g0, band)``: rows ``g0 .. g0 + n + patch - 2`` of reference ``i``'s
    ``C x Hr x Wr`` map (``ref_shapes[i] = (Hr, Wr)``), i.e. its patch-grid rows ``g0 .. g0 + n - 1``;
    every grid row exactly once, references in order, bands top to bottom. The result is
    :func:`match_exact`'s on the whole maps (same indices, ties to the lowest index).
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
        _scan_ref(padded, H, W, band, patch, max_mb, offsets[i] + g0 * gw, best, arg)
    return finish(content, padded, ref_shapes, best.view(H, pw)[:, :W], arg.view(H, pw)[:, :W], patch)


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
              best: Tensor, arg: Tensor) -> None:
    """Update the running ``best``/``arg`` (content positions in padded width) with one reference."""
    C, Hr, Wr = ref.shape
    p, r = patch, patch // 2
    pw, gh, gw = W + 2 * r, Hr - p + 1, Wr - p + 1
    rows = pixel_rows(ref)
    inv = 1.0 / patch_norms(rows, Hr, Wr, p).clamp_min(EPS)  # gh x gw
    scale = torch.zeros(gh, Wr, dtype=rows.dtype, device=rows.device)
    scale[:, :gw] = inv
    mask = torch.full((gh, Wr), -torch.inf, dtype=rows.dtype, device=rows.device)
    mask[:, :gw] = 0
    scale, mask = scale.view(-1), mask.view(-1)
    rc, rr = band_rows(H, W, Hr, Wr, p, max_mb, rows.element_size())
    shifts = [(dy * pw + dx, dy * Wr + dx) for dy in range(p) for dx in range(p)]
    na_max, nb_max = (rc + p - 1) * pw, (rr + p - 1) * Wr
    pix_buf = rows.new_empty(na_max * nb_max)
    score_buf = rows.new_empty(((rc - 1) * pw + W) * ((rr - 1) * Wr + gw))
    for g0 in range(0, gh, rr):
        g1 = min(gh, g0 + rr)
        block_r = rows[g0 * Wr:(g1 + p - 1) * Wr]
        nb, nj = block_r.shape[0], (g1 - g0 - 1) * Wr + gw
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
            scores = _score_block(pix, ni, nj, shifts, scale[g0 * Wr:g0 * Wr + nj],
                                  mask[g0 * Wr:g0 * Wr + nj], score_buf[:ni * nj].view(ni, nj))
            vals, idx = scores.max(dim=1)
            b, a = best[y0 * pw:y0 * pw + ni], arg[y0 * pw:y0 * pw + ni]
            better = vals > b  # strict: earlier blocks (lower indices) win ties
            b.copy_(torch.where(better, vals, b))
            a.copy_(torch.where(better, base + (idx // Wr + g0) * gw + idx % Wr, a))


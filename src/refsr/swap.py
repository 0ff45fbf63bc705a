"""SRNTT patch matching and feature swapping (DESIGN §4), streamed and memory-bounded.

Conventions (all feature maps are ``C x H x W`` or ``1 x C x H x W``):

* **Candidates** are the valid ``p x p`` patches (stride 1, no padding) of each reference's
  relu3_1 map ``C x Hr x Wr``: a ``(Hr-p+1) x (Wr-p+1)`` *patch grid*. Grid cell
  ``(gy, gx)`` is the patch with top-left ``(gy, gx)``, i.e. centre ``(gy + p//2, gx + p//2)``.
  Patches of several references are numbered consecutively: reference 0's grid in
  row-major order, then reference 1's, ... (``Correspondence.offsets``).
* **Content** patches are taken around *every* content position: the content map is
  zero-padded by ``p//2`` first (what the official SRNTT code does with its ``'SAME'``
  convolution), so the correspondence has the content's full ``H x W`` size. Border
  patches thus contain zeros; they only lower the score, never the argmax's validity.
* ``score`` is SRNTT's ``S*``: ``<content_patch, cand_patch / |cand_patch|>``, maximised
  over all candidates (ties go to the lowest index). ``cosine`` is ``score / |content_patch|``
  (0 for an all-zero content patch), the mean of which the similarity tiers use.
* **Swapping** at relu3_1 / relu2_1 / relu1_1 (scale ``s`` = 1 / 2 / 4 relative to relu3_1)
  puts, for content position ``(y, x)``, the ``p*s x p*s`` patch of the *original*
  reference's map whose top-left is ``(gy*s, gx*s)`` at the output location whose top-left
  is ``((y - p//2)*s, (x - p//2)*s)``; parts falling outside the output are dropped, and
  every output pixel is the mean of the patches covering it (border pixels have fewer).

Speed and memory: the ``N_content x N_ref`` score matrix is never built, nor any patch
vector. :func:`match` multiplies *pixel* rows (C-deep, 1/p² of the patch-level FLOPs) in
blocks of about :data:`BLOCK_SIDE` positions a side (:func:`band_rows`, shrunk to fit
``max_mb``) and sums p² shifted slices of each block into exact patch scores, keeping a
running max/argmax. :func:`swap` stitches with one ``F.embedding_bag`` per layer over the
channels-last reference map (no fold, no Python loop). Outside the budget are only tensors
of the inputs' or outputs' own size (the zero-padded content copy, a channels-last copy of
a reference that is not channels-last already, the ``H x W`` running state, the swapped
maps). ``mode="approximate"`` (:mod:`refsr.approx`) trades exactness for speed.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from refsr.atomic import atomic_path
from refsr.errors import RefsrError
from refsr.resize import down_up

#: Norm floor for patch normalisation (``tf.nn.l2_normalize``'s 1e-12 on the squared norm).
EPS = 1e-6
#: Swapped layers and their scale relative to relu3_1.
SWAP_SCALES = {"relu3_1": 1, "relu2_1": 2, "relu1_1": 4}
#: Image pixels per relu3_1 position.
RELU3_STRIDE = 4
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Correspondence:
    """Best reference patch for every content position at relu3_1.

    ``index``: ``H x W`` int64, flat index into the concatenated patch grids of all references.
    ``score``: ``H x W`` SRNTT ``S*``. ``cosine``: ``H x W`` best-match cosine (``None`` when
    loaded from a cache file, which stores only what training needs).
    ``ref_shapes``: each reference's relu3_1 map size ``(Hr, Wr)``. ``patch``: patch side.
    """

    index: Tensor
    score: Tensor
    ref_shapes: tuple[tuple[int, int], ...]
    cosine: Tensor | None = None
    patch: int = 3

    @property
    def grid_shapes(self) -> tuple[tuple[int, int], ...]:
        """Patch-grid size ``(Hr - p + 1, Wr - p + 1)`` of each reference."""
        p = self.patch
        return tuple((h - p + 1, w - p + 1) for h, w in self.ref_shapes)

    @property
    def offsets(self) -> tuple[int, ...]:
        """Start of each reference's block of flat indices, plus the total at the end."""
        out = [0]
        for gh, gw in self.grid_shapes:
            out.append(out[-1] + gh * gw)
        return tuple(out)

    @property
    def ref_id(self) -> Tensor:
        """``H x W`` int64: which reference each content position was matched to."""
        bounds = torch.tensor(self.offsets[1:-1], dtype=self.index.dtype, device=self.index.device)
        return torch.bucketize(self.index, bounds, right=True)

    @property
    def grid_pos(self) -> tuple[Tensor, Tensor]:
        """``(gy, gx)``: patch-grid cell (= patch top-left) in the matched reference."""
        rid = self.ref_id
        starts = torch.tensor(self.offsets[:-1], device=self.index.device)[rid]
        widths = torch.tensor([gw for _, gw in self.grid_shapes], device=self.index.device)[rid]
        local = self.index.long() - starts
        return local // widths, local % widths

    @property
    def pos(self) -> tuple[Tensor, Tensor]:
        """``(y, x)``: matched patch centre in the reference's relu3_1 map."""
        gy, gx = self.grid_pos
        return gy + self.patch // 2, gx + self.patch // 2

    def to(self, device: str | torch.device) -> Correspondence:
        """A copy with all tensors on ``device``."""
        cos = None if self.cosine is None else self.cosine.to(device)
        return replace(self, index=self.index.to(device), score=self.score.to(device), cosine=cos)


# ----------------------------------------------------------------------------- helpers


def _as_chw(t: Tensor, what: str) -> Tensor:
    """Accept ``C x H x W`` or ``1 x C x H x W``."""
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3:
        raise ValueError(f"{what}: expected C x H x W or 1 x C x H x W, got {tuple(t.shape)}")
    return t


def _rows(t: Tensor) -> Tensor:
    """``C x H x W`` as contiguous pixel rows ``(H*W) x C``: a view of a channels-last map, else one copy."""
    return t.permute(1, 2, 0).reshape(-1, t.shape[0]).contiguous()


def _padded_rows(content: Tensor, r: int) -> Tensor:
    """The content zero-padded by ``r`` as pixel rows ``((H+2r)*(W+2r)) x C`` (one copy)."""
    C, H, W = content.shape
    out = content.new_zeros(H + 2 * r, W + 2 * r, C)
    out[r:r + H, r:r + W] = content.permute(1, 2, 0)
    return out.view(-1, C)


def _box_sum(x: Tensor, p: int) -> Tensor:
    """Sums over the valid ``p x p`` windows of an ``H x W`` map."""
    if p == 1:
        return x
    return F.avg_pool2d(x[None, None], p, stride=1, divisor_override=1)[0, 0]


def _patch_norms(rows: Tensor, h: int, w: int, p: int) -> Tensor:
    """L2 norm of every valid ``p x p`` patch of a map given as pixel rows: ``(h-p+1) x (w-p+1)``."""
    return _box_sum(torch.linalg.vector_norm(rows, dim=1).square_().view(h, w), p).clamp_min(0).sqrt()


def _kernel_offsets(width: int, k: int, device: torch.device) -> Tensor:
    """Flat offsets ``dy * width + dx`` of a ``k x k`` patch, in F.unfold order (row-major)."""
    d = torch.arange(k, device=device)
    return (d[:, None] * width + d[None, :]).reshape(-1)


def chunk_size(n_content: int, patch_dim: int, max_mb: float = 256,
               patch_area: int = 9, itemsize: int = 4) -> tuple[int, int]:
    """``(content_chunk, ref_chunk)`` so that a block of explicit patch vectors fits in ``max_mb``.

    One block holds the content patches ``nc x patch_dim``, the candidate patches
    ``nr x patch_dim``, the score block ``nc x nr``, their gather indices and norms and the
    block max/argmax; :func:`block_bytes` is that total. Content positions take at most half
    the budget; the rest sizes the candidate chunk. Never below 1 x 1. (Used by the
    approximate mode's re-scoring and by the naive benchmark reference; :func:`match` itself
    never builds patch vectors, see :func:`band_rows`.)
    """
    budget = max(0, int(max_mb * 2**20))
    per_c, per_r = _per_content(patch_dim, patch_area, itemsize), _per_ref(patch_dim, patch_area, itemsize)
    nc = max(1, min(n_content, (budget // 2) // per_c))
    nr = max(1, (budget - nc * per_c) // (per_r + itemsize * nc))
    return int(nc), int(nr)


def _per_content(patch_dim: int, patch_area: int, itemsize: int) -> int:
    """Bytes per content position in a block: patch, gather index, norm, block max + argmax."""
    return patch_dim * itemsize + patch_area * 8 + itemsize + itemsize + 8


def _per_ref(patch_dim: int, patch_area: int, itemsize: int) -> int:
    """Bytes per candidate in a block: patch, gather index, norm."""
    return patch_dim * itemsize + patch_area * 8 + itemsize


def block_bytes(nc: int, nr: int, patch_dim: int, patch_area: int = 9, itemsize: int = 4) -> int:
    """Peak extra bytes of one block of ``nc`` content x ``nr`` candidate patch vectors."""
    return (nc * _per_content(patch_dim, patch_area, itemsize)
            + nr * _per_ref(patch_dim, patch_area, itemsize) + nc * nr * itemsize)


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
    """Peak extra bytes of one :func:`match` block: ``rc`` content rows x ``rr`` candidate rows.

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
    """``(content_rows, candidate_rows)`` per block of :func:`match`: about ``side`` positions
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


def _check_refs(content: Tensor, refs: list[Tensor], patch: int) -> list[Tensor]:
    """Validate channel counts and sizes; return refs as ``C x Hr x Wr``."""
    if patch < 1 or patch % 2 == 0:
        raise ValueError(f"patch must be a positive odd number, got {patch}")
    if not refs:
        raise RefsrError("reference", "at least one reference is needed")
    out = []
    for i, ref in enumerate(refs):
        ref = _as_chw(ref, f"reference {i}")
        if ref.shape[0] != content.shape[0]:
            raise ValueError(f"reference {i} has {ref.shape[0]} channels, content {content.shape[0]}")
        if ref.shape[1] < patch or ref.shape[2] < patch:
            raise RefsrError("reference", f"reference {i}: feature map {ref.shape[2]}x{ref.shape[1]} "
                                          f"is smaller than one {patch}x{patch} patch")
        out.append(ref.to(device=content.device, dtype=content.dtype))
    return out


def _check_content(content: Tensor) -> Tensor:
    content = _as_chw(content, "content")
    if content.shape[1] < 1 or content.shape[2] < 1:
        raise RefsrError("lr", f"content feature map is empty ({content.shape[2]}x{content.shape[1]})")
    return content


def _content_norms(padded: Tensor, H: int, W: int, patch: int) -> Tensor:
    """``H x W`` norms of the zero-padded content patches (from pixel rows of the padded map)."""
    r = patch // 2
    return _patch_norms(padded, H + 2 * r, W + 2 * r, patch)


def _finish(content: Tensor, padded: Tensor, refs: list[Tensor], best: Tensor, arg: Tensor,
            patch: int) -> Correspondence:
    H, W = content.shape[1:]
    cnorm = _content_norms(padded, H, W, patch).reshape(-1)
    best, arg = best.reshape(-1), arg.reshape(-1)
    cosine = torch.where(cnorm > EPS, best / cnorm.clamp_min(EPS), torch.zeros_like(best))
    return Correspondence(index=arg.view(H, W), score=best.view(H, W),
                          ref_shapes=tuple((int(t.shape[1]), int(t.shape[2])) for t in refs),
                          cosine=cosine.view(H, W), patch=patch)


@torch.no_grad()
def match(content: Tensor, refs: list[Tensor], patch: int = 3, max_mb: float = 256,
          mode: str = "exact", approx=None) -> Correspondence:
    """SRNTT matching of every content position against all references' patches.

    ``content``: ``C x H x W`` (φ(LR↑) at relu3_1); ``refs``: list of ``C x Hr x Wr``
    (φ(Ref↓↑)), sizes free; channels-last maps (as :func:`correspond` makes them) need no
    copies. ``mode="exact"`` streams over blocks (see :func:`band_rows`), deterministic;
    ``mode="approximate"`` runs :func:`refsr.approx.match_approximate` with ``approx``
    (an :class:`refsr.approx.ApproxConfig` or a dict of its fields). No gradients flow
    (S* is a constant weight in SRNTT's texture loss).
    """
    if mode == "approximate":
        from .approx import match_approximate

        return match_approximate(content, refs, patch=patch, max_mb=max_mb, config=approx)
    if mode != "exact":
        raise ValueError(f"matching mode must be 'exact' or 'approximate', got {mode!r}")
    content = _check_content(content)
    refs = _check_refs(content, refs, patch)
    C, H, W = content.shape
    r = patch // 2
    pw = W + 2 * r
    padded = _padded_rows(content, r)
    best = torch.full((H * pw,), -torch.inf, dtype=content.dtype, device=content.device)
    arg = torch.zeros(H * pw, dtype=torch.int64, device=content.device)
    base = 0
    for ref in refs:
        _scan_ref(padded, H, W, ref, patch, max_mb, base, best, arg)
        base += (ref.shape[1] - patch + 1) * (ref.shape[2] - patch + 1)
    return _finish(content, padded, refs, best.view(H, pw)[:, :W], arg.view(H, pw)[:, :W], patch)


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
    rows = _rows(ref)
    inv = 1.0 / _patch_norms(rows, Hr, Wr, p).clamp_min(EPS)  # gh x gw
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


# ----------------------------------------------------------------------------- swapping
#
# Every output map is cut into s x s blocks on the relu3_1 grid (s = 1, 2, 4 for relu3_1,
# relu2_1, relu1_1). Content position (y, x) matched to grid cell (gy, gx) pastes the
# reference blocks (gy + dy, gx + dx), dy, dx < p, onto output blocks (y - r + dy, x - r + dx).
# So output block (Y, X) is the mean over (dy, dx) of reference block
# (gy, gx)(Y + r - dy, X + r - dx) + (dy, dx), over the content positions inside the map.
# With the reference map channels-last, each block row (s pixels x C channels) is one
# contiguous table row; every output block row is then a weighted sum of p*p table rows:
# one F.embedding_bag call per layer writes the channels-last result, no fold, no scatter.


def _table(m: Tensor, h3: int, w3: int, s: int) -> Tensor:
    """Reference map ``C x Hm x Wm`` cut to ``h3*s x w3*s`` as block rows ``(h3*s*w3) x (s*C)``.

    A view for a channels-last map of exactly that size, else one copy.
    """
    C = m.shape[0]
    return m[:, :h3 * s, :w3 * s].permute(1, 2, 0).reshape(h3 * s * w3, s * C)


def _bags(top_left: Tensor, width: Tensor | int, s: int, p: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Table rows and weights of every output block row, ``(B*H*s*W) x p*p`` each.

    ``top_left`` (``B x H x W``): table row of each content position's matched patch (its
    top-left block, first pixel row); ``width`` (same shape, or one int): table rows per pixel
    row of its reference. A content position outside the map contributes weight 0 (its row
    index is a valid placeholder: row 0 plus the in-patch offset). A handful of whole-tensor
    operations (few, large ops stay fast on a busy machine).
    """
    B, H, W = top_left.shape
    r = p // 2

    def windows(x: Tensor, fill: int) -> Tensor:  # [..., dy*p+dx] = x at content (Y+r-dy, X+r-dx)
        x = F.pad(x, (r, r, r, r), value=fill)
        return x.unfold(1, p, 1).unfold(2, p, 1).flip(-2, -1).reshape(B, H, 1, W, p * p)

    tl = windows(top_left, -1)
    valid = tl >= 0
    d = torch.arange(p, device=top_left.device)
    sy = torch.arange(s, device=top_left.device)[:, None, None]
    if isinstance(width, int):
        idx = tl.clamp_min(0) + ((d[:, None] * s * width + d[None, :]).reshape(-1) + sy * width)
    else:
        wd = windows(width, 0)
        dy, dx = d.repeat_interleave(p), d.repeat(p)
        idx = tl.clamp_min(0) + (dy * s + sy) * wd + dx
    weights = valid.to(dtype)
    weights /= weights.sum(-1, keepdim=True)  # every block is covered by its own position
    return idx.reshape(-1, p * p), weights.expand(B, H, s, W, p * p).reshape(-1, p * p)


def _stitch(table: Tensor, top_left: Tensor, width: Tensor | int, s: int, p: int, max_mb: float) -> Tensor:
    """Overlap-averaged swapped maps ``B x C x H*s x W*s`` (channels-last memory)."""
    B, H, W = top_left.shape
    C = table.shape[1] // s
    per_row = B * W * s * p * p * (8 + table.element_size())  # bag indices + weights per output block row
    band = max(1, min(H, int(max_mb * 2**20) // max(1, per_row)))
    if band >= H:
        idx, wts = _bags(top_left, width, s, p, table.dtype)
        out = F.embedding_bag(idx, table, mode="sum", per_sample_weights=wts)
        return out.view(B, H * s, W * s, C).permute(0, 3, 1, 2)
    r = p // 2
    out = table.new_empty(B, H * s, W * s, C)
    for y0 in range(0, H, band):  # bands of output rows, each with the content rows it needs
        y1 = min(H, y0 + band)
        a, b = max(0, y0 - r), min(H, y1 + r)
        wd = width if isinstance(width, int) else width[:, a:b]
        idx, wts = _bags(top_left[:, a:b], wd, s, p, table.dtype)
        rows = F.embedding_bag(idx, table, mode="sum", per_sample_weights=wts).view(B, (b - a) * s, W * s, C)
        out[:, y0 * s:y1 * s] = rows[:, (y0 - a) * s:(y1 - a) * s]
    return out.permute(0, 3, 1, 2)


def _fit_output(M: Tensor, out_h: int, out_w: int, s: int) -> Tensor:
    th, tw = out_h * s // RELU3_STRIDE, out_w * s // RELU3_STRIDE
    if (th, tw) != tuple(M.shape[-2:]):
        M = F.pad(M, (0, tw - M.shape[-1], 0, th - M.shape[-2]), mode="replicate")
    return M


def _check_map(m: Tensor, i: int, layer: str, h3: int, w3: int, s: int) -> None:
    if m.shape[-2] < h3 * s or m.shape[-1] < w3 * s:
        raise ValueError(f"reference {i} {layer} is {tuple(m.shape[-2:])}, needs at least {(h3 * s, w3 * s)}")


@torch.no_grad()
def swap(corr: Correspondence, ref_feats: list[dict[str, Tensor]],
         out_hw: tuple[int, int] | None = None, max_mb: float = 256) -> dict[str, Tensor]:
    """Swapped feature maps ``M`` (``1 x C x h x w``) at relu3_1, relu2_1 and relu1_1.

    ``ref_feats[i]`` holds φ(Ref_i) (the original reference, not Ref↓↑) for the layers to
    swap; the layers present in every dict among relu3_1/relu2_1/relu1_1 are produced.
    ``out_hw`` is the content *image* size (LR↑); each layer's map is ``out_hw // stride``
    (stride 4/2/1), default ``4H x 4W``. When the image side is not a multiple of 4 the extra
    rows/columns at relu2_1/relu1_1 replicate the last stitched ones. ``M`` is a constant
    target (no gradients); it comes in channels-last memory (``reshape``, not ``view``, to
    flatten it), and channels-last reference maps (what :func:`transfer` makes) are used in
    place. ``max_mb`` bounds the stitching's index arrays (the maps themselves are outputs).
    """
    H, W = corr.index.shape
    out_h, out_w = out_hw if out_hw is not None else (RELU3_STRIDE * H, RELU3_STRIDE * W)
    if (out_h // RELU3_STRIDE, out_w // RELU3_STRIDE) != (H, W):
        raise ValueError(f"out_hw {out_hw} does not match the {H}x{W} relu3_1 correspondence")
    if len(ref_feats) != len(corr.ref_shapes):
        raise ValueError(f"{len(ref_feats)} reference feature sets for {len(corr.ref_shapes)} references")
    dev = corr.index.device
    if len(corr.ref_shapes) == 1:
        gw = corr.ref_shapes[0][1] - corr.patch + 1
        rid, gy, gx = None, corr.index // gw, corr.index % gw
    else:
        rid, (gy, gx) = corr.ref_id, corr.grid_pos
    out = {}
    for layer, s in SWAP_SCALES.items():
        if not all(layer in f for f in ref_feats):
            continue
        tables, sizes = [], [0]
        for i, (f, (h3, w3i)) in enumerate(zip(ref_feats, corr.ref_shapes, strict=True)):
            m = _as_chw(f[layer], f"reference {i} {layer}").to(dev)
            _check_map(m, i, layer, h3, w3i, s)
            tables.append(_table(m, h3, w3i, s))
            sizes.append(sizes[-1] + tables[-1].shape[0])
        if rid is None:
            w3 = corr.ref_shapes[0][1]
            M = _stitch(tables[0], (gy * (s * w3) + gx)[None], w3, s, corr.patch, max_mb)
        else:
            w3 = torch.tensor([w for _, w in corr.ref_shapes], device=dev)[rid]
            top_left = torch.tensor(sizes[:-1], device=dev)[rid] + gy * s * w3 + gx
            M = _stitch(torch.cat(tables), top_left[None], w3[None], s, corr.patch, max_mb)
        out[layer] = _fit_output(M, out_h, out_w, s)
    return out


@torch.no_grad()
def swap_batch(corrs: list[Correspondence], ref_feats: dict[str, Tensor],
               out_hw: tuple[int, int] | None = None, max_mb: float = 256) -> dict[str, Tensor]:
    """:func:`swap` for a batch: sample ``b`` has one reference, ``ref_feats[layer][b]``.

    ``ref_feats``: layer -> ``B x C x Hm x Wm``; all correspondences must share their size
    and reference shape (a training batch). Returns layer -> ``B x C x h x w``, equal to
    stacking :func:`swap` of each sample, in one stitching call per layer.
    """
    if not corrs:
        raise ValueError("swap_batch needs at least one correspondence")
    first = corrs[0]
    H, W = first.index.shape
    if any(c.index.shape != (H, W) or c.ref_shapes != first.ref_shapes or c.patch != first.patch
           for c in corrs) or len(first.ref_shapes) != 1:
        raise ValueError("swap_batch: every correspondence must have one reference and the same shapes")
    out_h, out_w = out_hw if out_hw is not None else (RELU3_STRIDE * H, RELU3_STRIDE * W)
    if (out_h // RELU3_STRIDE, out_w // RELU3_STRIDE) != (H, W):
        raise ValueError(f"out_hw {out_hw} does not match the {H}x{W} relu3_1 correspondence")
    (h3, w3), = first.ref_shapes
    gw = w3 - first.patch + 1
    B = len(corrs)
    out = {}
    for layer, s in SWAP_SCALES.items():
        if layer not in ref_feats:
            continue
        maps = ref_feats[layer]
        if maps.dim() != 4 or maps.shape[0] != B:
            raise ValueError(f"ref_feats[{layer}] is {tuple(maps.shape)}, expected {B} x C x H x W")
        dev = maps.device
        _check_map(maps, 0, layer, h3, w3, s)
        C = maps.shape[1]
        table = maps[:, :, :h3 * s, :w3 * s].permute(0, 2, 3, 1).reshape(B * h3 * s * w3, s * C)
        index = torch.stack([c.index.to(dev) for c in corrs])
        base = torch.arange(B, device=dev)[:, None, None] * (h3 * s * w3)
        top_left = base + (index // gw) * s * w3 + index % gw
        M = _stitch(table, top_left, w3, s, first.patch, max_mb)
        out[layer] = _fit_output(M, out_h, out_w, s)
    return out


# ----------------------------------------------------------------------------- images


def _as_image(img: Tensor, what: str) -> Tensor:
    """Accept ``3 x H x W`` or ``1 x 3 x H x W`` in [0, 1]; return ``1 x 3 x H x W``."""
    if img.dim() == 3:
        img = img[None]
    if img.dim() != 4 or img.shape[:2] != (1, 3):
        raise ValueError(f"{what}: expected 1 x 3 x H x W, got {tuple(img.shape)}")
    return img


def _check_ref_image(ref: Tensor, i: int) -> None:
    h, w = ref.shape[-2:]
    side = 3 * RELU3_STRIDE
    if h < side or w < side:
        raise RefsrError("reference", f"reference {i} is {w}x{h} px, smaller than one 3x3 patch "
                                      f"at relu3_1 ({side}x{side} px)")


def ref_down_up(ref: Tensor, scale: int = 4) -> Tensor:
    """``Ref↓↑``: MATLAB bicubic down and up by ``scale`` on the uint8 image (mod-cropped).

    ``ref`` is ``1 x 3 x H x W`` in [0, 1]; returns the same layout, dtype and device.
    """
    ref = _as_image(ref, "reference")
    arr = (ref[0].detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    out = torch.from_numpy(np.ascontiguousarray(down_up(arr, scale))).permute(2, 0, 1)[None]
    return out.to(device=ref.device, dtype=ref.dtype) / 255


def _features(vgg, img: Tensor, layers: tuple[str, ...]) -> dict[str, Tensor]:
    """Run ``vgg`` without gradients and check that it provides ``layers``."""
    # Channels-last: faster convolutions, and pixel rows for matching/stitching. A clone gives
    # canonical strides (an N = 1 tensor can pass as channels-last with strides the
    # convolutions do not keep).
    with torch.no_grad():
        feats = vgg(img.clone(memory_format=torch.channels_last))
    missing = [name for name in layers if name not in feats]
    if missing:
        raise RefsrError("vgg", f"the feature extractor lacks {', '.join(missing)}; load it with "
                                f"load_vgg19(layers={layers})")
    return feats


def correspond(lr_up: Tensor, refs: list[Tensor], vgg, max_mb: float = 256,
               refs_down_up: list[Tensor] | None = None, mode: str = "exact",
               approx=None) -> Correspondence:
    """Match φ(LR↑) against φ(Ref↓↑) at relu3_1 for images in [0, 1] (``1 x 3 x H x W``).

    ``refs`` are the original references (any sizes >= 12 px); their ``Ref↓↑`` is made with
    :func:`ref_down_up` unless given in ``refs_down_up`` (same order, e.g. from a cache).
    ``mode``/``approx``: see :func:`match`.
    """
    lr_up = _as_image(lr_up, "lr_up")
    if min(lr_up.shape[-2:]) < RELU3_STRIDE:
        raise RefsrError("lr", f"LR↑ image {lr_up.shape[-1]}x{lr_up.shape[-2]} px is smaller "
                               f"than one relu3_1 position ({RELU3_STRIDE} px)")
    refs = [_as_image(ref, f"reference {i}") for i, ref in enumerate(refs)]
    if not refs:
        raise RefsrError("reference", "at least one reference is needed")
    for i, ref in enumerate(refs):
        _check_ref_image(ref, i)
    if refs_down_up is None:
        refs_down_up = [ref_down_up(ref) for ref in refs]
    elif len(refs_down_up) != len(refs):
        raise ValueError(f"{len(refs_down_up)} Ref↓↑ images for {len(refs)} references")
    for i, (ref, prepared) in enumerate(zip(refs, refs_down_up, strict=True)):
        if tuple(d // RELU3_STRIDE for d in ref.shape[-2:]) != \
                tuple(d // RELU3_STRIDE for d in prepared.shape[-2:]):
            raise ValueError(f"Ref↓↑ {i} is {tuple(prepared.shape[-2:])}, reference "
                             f"{tuple(ref.shape[-2:])}: their relu3_1 grids differ")
    layer = ("relu3_1",)
    content = _features(vgg, lr_up, layer)["relu3_1"]
    cands = [_features(vgg, _as_image(r, "Ref↓↑"), layer)["relu3_1"] for r in refs_down_up]
    return match(content, cands, patch=3, max_mb=max_mb, mode=mode, approx=approx)


def transfer(lr_up: Tensor, refs: list[Tensor], vgg, max_mb: float = 256,
             refs_down_up: list[Tensor] | None = None, mode: str = "exact",
             approx=None) -> tuple[Correspondence, dict[str, Tensor]]:
    """:func:`correspond` then :func:`swap` with φ(Ref) at relu1_1, relu2_1, relu3_1."""
    corr = correspond(lr_up, refs, vgg, max_mb=max_mb, refs_down_up=refs_down_up, mode=mode, approx=approx)
    layers = tuple(SWAP_SCALES)
    ref_feats = [_features(vgg, _as_image(ref, "reference"), layers) for ref in refs]
    return corr, swap(corr, ref_feats, out_hw=tuple(lr_up.shape[-2:]), max_mb=max_mb)


# ----------------------------------------------------------------------------- cache


def save_correspondence(path: str | Path, corr: Correspondence) -> None:
    """Write ``corr`` atomically as a compressed ``.npz``: int32 index, fp16 S*, grid shapes.

    ``cosine`` is not stored (training needs only index and S*).
    """
    score = corr.score.detach().cpu().numpy().astype(np.float16)
    if not np.isfinite(score).all():
        raise RefsrError(path, "S* does not fit in float16 (non-finite after conversion)")
    arrays = dict(index=corr.index.cpu().numpy().astype(np.int32), score=score,
                  ref_shapes=np.asarray(corr.ref_shapes, dtype=np.int32).reshape(-1, 2),
                  patch=np.int32(corr.patch), version=np.int32(_FORMAT_VERSION))
    # Writing through a file object stops numpy from appending ".npz" to the temporary name.
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def load_correspondence(path: str | Path, device: str | torch.device = "cpu") -> Correspondence:
    """Read a file written by :func:`save_correspondence` (``cosine`` is ``None``)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {key: z[key] for key in ("index", "score", "ref_shapes", "patch", "version")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise RefsrError(path, f"not a readable correspondence file ({type(err).__name__}: {err})") from None
    if int(arrays["version"]) != _FORMAT_VERSION:
        raise RefsrError(path, f"correspondence format version {int(arrays['version'])}, "
                               f"expected {_FORMAT_VERSION}")
    index, score, shapes = arrays["index"], arrays["score"], arrays["ref_shapes"]
    corr = Correspondence(index=torch.from_numpy(index.astype(np.int64)).to(device),
                          score=torch.from_numpy(score.astype(np.float32)).to(device),
                          ref_shapes=tuple((int(h), int(w)) for h, w in shapes.reshape(-1, 2)),
                          patch=int(arrays["patch"]))
    if index.ndim != 2 or score.shape != index.shape or not corr.ref_shapes:
        raise RefsrError(path, f"inconsistent shapes: index {index.shape}, score {score.shape}")
    if index.size and (index.min() < 0 or index.max() >= corr.offsets[-1]):
        raise RefsrError(path, "patch index out of range for the stored reference grids")
    return corr

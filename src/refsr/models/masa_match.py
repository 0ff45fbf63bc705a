"""MASA-SR's matching (MAM) and texture transfer, as released (``MASA.forward``'s search and
``search`` / ``search_org`` / ``transfer`` / ``make_grid`` of ``models/archs/MASA_arch.py``, commit
80d1bd8), streamed: see :mod:`refsr.models.masa` for what is computed and what ``max_mb`` bounds.

The top-1 of each search is merged across candidate groups keeping the highest score and, on an
exact tie, the lowest index (:func:`torch.argmax` returns the first maximum; the released
``topk`` returned the lowest index at each exact tie of the fixture). Scores are computed with the
released operations in the released layout (unfold, ``F.normalize``, ``bmm``), only over fewer
candidates at a time; ``tests/test_masa.py`` checks that the result does not depend on ``max_mb``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from refsr.core.errors import RefsrError

LR_BLOCK = 8
WINDOW_FACTOR = 1.5
DILATIONS = (1, 2, 3)
DEFAULT_MAX_MB = 256.0
#: The narrowest piece (in candidates) a streamed score product is cut into. MKL's sgemm sums in
#: another order for narrow products (measured: fewer than ~33 columns, or a narrow tail), so a
#: score would differ in its last bit from the released whole product; pieces at least this wide,
#: balanced (no narrow tail), give the released scores bit for bit here (tests/test_masa.py).
MIN_PIECE = 1024

# ----------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Geometry:
    """Blocks of the LR features (``py × px`` of ``k_y × k_x``) and the window side ``d``."""

    py: int
    px: int
    k_y: int
    k_x: int
    d_y: int
    d_x: int

    @property
    def blocks(self) -> int:
        return self.py * self.px


def geometry(h: int, w: int, h_ref_down: int, w_ref_down: int) -> Geometry:
    """The released block and window sizes for an ``h × w`` LR and an ``h_r × w_r`` Ref↓; a one-line
    error for an LR the released network cannot take (it needs multiples of 4, at least 8, and
    blocks that tile it: ``h % (h // 8) == 0``)."""
    py, px = h // LR_BLOCK, w // LR_BLOCK
    if py < 1 or px < 1 or h % 4 or w % 4 or h % py or w % px:
        raise RefsrError("MASA input", f"LR {w}x{h} does not fit the released network (it needs sides that "
                                       "are multiples of 4, at least 8, divisible by side // 8; "
                                       "super_resolve pads to a multiple of 8)")
    d_x = 2 * int(w_ref_down // (2 * px) * WINDOW_FACTOR) + 1
    d_y = 2 * int(h_ref_down // (2 * py) * WINDOW_FACTOR) + 1
    return Geometry(py, px, h // py, w // px, d_y, d_x)


def window_start(index: Tensor, d: int, size: int) -> Tensor:
    """First row (column) of the ``d + 2`` window around ``index``, shifted inside ``[0, size)``
    as the released mask arithmetic does (negative when the window is larger than ``size``)."""
    a, b = index - d // 2 - 1, index + d // 2 + 1
    low = a < 0
    a, b = torch.where(low, torch.zeros_like(a), a), torch.where(low, torch.full_like(b, d + 1), b)
    high = b > size - 1
    b = torch.where(high, torch.full_like(b, size - 1), b)
    return torch.where(high, b - (d + 1), a)


def _wrap(coords: Tensor, size: int, what: str) -> Tensor:
    """Coordinates as the released advanced indexing reads them: negatives wrap once."""
    if coords.numel() and (int(coords.min()) < -size or int(coords.max()) >= size):
        raise RefsrError("MASA input", f"{what} window outside the reference features (size {size}); "
                                       "the reference is too small for this LR")
    return torch.where(coords < 0, coords + size, coords)


# ----------------------------------------------------------------------------- streamed top-1


class _Top1:
    """Running top-1 over candidate groups: the highest score, the lowest index on exact ties;
    or, with ``forced`` indices, the score found at them."""

    def __init__(self, shape: tuple[int, ...], device, forced: Tensor | None = None):
        self.value = torch.full(shape, -math.inf, device=device)
        self.index = torch.zeros(shape, dtype=torch.long, device=device)
        self.forced = forced
        if forced is not None:
            self.index = forced.reshape(shape).to(device=device, dtype=torch.long).clone()

    def add(self, scores: Tensor, offset: int, rows) -> None:
        """``scores`` [..., L] for candidates ``offset .. offset + L - 1`` of the queries ``rows``."""
        n = scores.shape[-1]
        value, index = self.value[rows], self.index[rows]
        if self.forced is not None:
            local = index - offset
            inside = (local >= 0) & (local < n)
            got = scores.gather(-1, local.clamp(0, n - 1).unsqueeze(-1)).squeeze(-1)
            self.value[rows] = torch.where(inside, got, value)
            return
        idx = torch.argmax(scores, dim=-1)  # the first maximum (documented)
        val = scores.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
        better = val > value  # strict: an earlier group keeps an exact tie
        self.value[rows] = torch.where(better, val, value)
        self.index[rows] = torch.where(better, idx + offset, index)


def _bounds(total: int, unit: int, bytes_per_unit: float, budget: float) -> list[int]:
    """``total`` rows of ``unit`` candidates each, split into balanced pieces that fit ``budget``
    but are at least about :data:`MIN_PIECE` candidates wide: the boundaries."""
    want = math.ceil(total * bytes_per_unit / max(budget, 1.0))
    k = max(1, min(want, total, (total * unit) // MIN_PIECE))
    return [i * total // k for i in range(k + 1)]


# ----------------------------------------------------------------------------- search and transfer


def align(fea_lr: list[Tensor], fea_reflr: list[Tensor], fea_ref: list[Tensor], geo: Geometry,
          budget: float, coarse_index: Tensor | None = None, fine_index: Tensor | None = None,
          ) -> tuple[list[Tensor], dict]:
    """Search and transfer: the features warped to the LR at x4, x2, x1 (``warp_ref_l``) and the
    search's tensors (``lr_patches``, ``coarse_corr``/``coarse_index`` [N, P, 1], ``window_y0``/
    ``window_x0`` [N, P], ``window_hw``, ``fine_corr``/``fine_index`` [N·P, k_y, k_x, 1]).
    ``coarse_index`` [N, P] / ``fine_index`` [N·P, k_y·k_x] replace the searches' top-1."""
    n, c, h, w = fea_lr[0].shape
    hr, wr = fea_reflr[0].shape[-2:]
    p, ky, kx = geo.blocks, geo.k_y, geo.k_x
    # blocks of the LR features, each with a 1-pixel margin (replicate at the border)
    padded = F.pad(fea_lr[0], pad=(1, 1, 1, 1), mode="replicate")
    blocks = F.unfold(padded, kernel_size=(ky + 2, kx + 2), stride=(ky, kx))
    blocks = blocks.view(n, c, ky + 2, kx + 2, p).permute(0, 4, 1, 2, 3)  # [N, P, C, ky+2, kx+2]

    coarse = _Top1((n, p), fea_lr[0].device, coarse_index)
    for b in range(n):
        coarse_search(blocks[b:b + 1], fea_reflr[0][b:b + 1], coarse, b, budget)
    idx = coarse.index  # [N, P]
    y0 = window_start(idx // wr, geo.d_y, hr)
    x0 = window_start(idx % wr, geo.d_x, wr)

    fine = _Top1((n * p, ky * kx), fea_lr[0].device, fine_index)
    for b in range(n):
        fine_search(blocks[b], fea_reflr[0][b], y0[b], x0[b], geo, fine, b * p, budget)

    warp = []
    for s, level in ((4, 0), (2, 1), (1, 2)):
        warp.append(transfer(fea_ref[level], fine.index, fine.value, y0, x0, geo, s, budget))
    info = dict(lr_patches=blocks, coarse_corr=coarse.value.unsqueeze(-1), coarse_index=coarse.index.unsqueeze(-1),
                window_y0=y0, window_x0=x0, window_hw=torch.tensor([geo.d_y + 2, geo.d_x + 2]),
                fine_corr=fine.value.view(n * p, ky, kx, 1), fine_index=fine.index.view(n * p, ky, kx, 1))
    return warp, info


def coarse_search(blocks: Tensor, reflr: Tensor, top: _Top1, b: int, budget: float) -> None:
    """Top-1 over every position of Ref↓ of the sum of the cosines of the block centres'
    3x3 neighbourhoods at each dilation (zero-padded unfold), streamed over Ref↓ rows."""
    _, p, c, hb, wb = blocks.shape
    cy, cx = hb // 2, wb // 2
    queries = []
    for d in DILATIONS:
        q = blocks[:, :, :, cy - d:cy + d + 1:d, cx - d:cx + d + 1:d].contiguous().view(1, p, c * 9)
        queries.append(F.normalize(q, dim=2))
    hr, wr = reflr.shape[-2:]
    m = max(DILATIONS)
    ref_pad = F.pad(reflr, (m, m, m, m))  # zeros, as unfold's padding
    bounds = _bounds(hr, wr, wr * (2 * c * 9 + 2 * p) * 4.0, budget)
    for r0, r1 in zip(bounds[:-1], bounds[1:], strict=True):
        total = 0
        for d, q in zip(DILATIONS, queries, strict=True):
            band = ref_pad[:, :, r0 + m - d:r1 + m + d, m - d:m + wr + d]
            keys = F.normalize(F.unfold(band, kernel_size=(3, 3), dilation=d), dim=1)
            total = total + torch.bmm(q, keys)  # [1, P, rows·Wr]
        top.add(total[0], r0 * wr, b)


def fine_search(blocks: Tensor, reflr: Tensor, y0: Tensor, x0: Tensor, geo: Geometry, top: _Top1,
                first: int, budget: float) -> None:
    """Every 3x3 patch of each block against every 3x3 patch of its window (cosine, top-1),
    blocks in groups and window rows in bands that fit ``budget``."""
    p, c = blocks.shape[:2]
    ky, kx, dy, dx = geo.k_y, geo.k_x, geo.d_y, geo.d_x
    hr, wr = reflr.shape[-2:]
    q_all = F.unfold(blocks, kernel_size=(3, 3))  # [P, C·9, ky·kx]
    per_row = dx * (2 * c * 9 + 2 * ky * kx) * 4.0
    group = min(p, int(budget // (per_row * dy)))  # blocks whose whole windows fit
    bounds = [0, dy] if group >= 1 else _bounds(dy, dx, per_row, budget)
    for g0 in range(0, p, max(group, 1)):
        g1 = min(p, g0 + max(group, 1))
        q = F.normalize(q_all[g0:g1].permute(0, 2, 1), dim=2)
        cols = _wrap(x0[g0:g1, None] + torch.arange(dx + 2, device=x0.device), wr, "MASA fine-search")
        for r0, r1 in zip(bounds[:-1], bounds[1:], strict=True):
            ys = _wrap(y0[g0:g1, None] + torch.arange(r0, r1 + 2, device=y0.device), hr, "MASA fine-search")
            win = reflr[:, ys[:, :, None], cols[:, None, :]].permute(1, 0, 2, 3).contiguous()  # [G, C, rows+2, dx+2]
            keys = F.normalize(F.unfold(win, kernel_size=(3, 3)), dim=1)
            scores = torch.bmm(q, keys)  # [G, ky·kx, rows·dx]
            top.add(scores, r0 * dx, slice(first + g0, first + g1))


def transfer(fea: Tensor, index: Tensor, soft: Tensor, y0: Tensor, x0: Tensor, geo: Geometry, s: int,
             budget: float) -> Tensor:
    """The 3s×3s patches (stride s) of ``fea`` at the chosen window positions, folded with
    padding s, divided by the overlap count, times the bilinearly resized soft attention."""
    n, c, hf, wf = fea.shape
    p, ky, kx, dx = geo.blocks, geo.k_y, geo.k_x, geo.d_x
    k = 3 * s
    out = fea.new_empty(n, c, geo.py * ky * s, geo.px * kx * s)
    per_block = c * k * k * ky * kx * 4.0 * 3
    group = max(1, min(p, int(budget // per_block)))
    ar = torch.arange(k, device=fea.device)
    for b in range(n):
        for g0 in range(0, p, group):
            g1 = min(p, g0 + group)
            idx = index[b * p + g0:b * p + g1]  # [G, ky·kx]
            rows = (y0[b, g0:g1, None] + idx // dx) * s  # [G, L]
            cols = (x0[b, g0:g1, None] + idx % dx) * s
            rows = _wrap(rows[..., None] + ar, hf, f"MASA x{s} transfer")  # [G, L, k]
            cols = _wrap(cols[..., None] + ar, wf, f"MASA x{s} transfer")
            patches = fea[b][:, rows[..., :, None], cols[..., None, :]]  # [C, G, L, k, k]
            cols_ = patches.permute(1, 0, 3, 4, 2).reshape(g1 - g0, c * k * k, ky * kx)
            size = (ky * s, kx * s)
            folded = F.fold(cols_, output_size=size, kernel_size=(k, k), padding=s, stride=s)
            divisor = F.fold(torch.ones_like(cols_), output_size=size, kernel_size=(k, k), padding=s, stride=s)
            att = F.interpolate(soft[b * p + g0:b * p + g1].view(-1, 1, ky, kx), size=size, mode="bilinear",
                                align_corners=False)
            warped = folded / divisor * att  # [G, C, ky·s, kx·s]
            for j, blk in enumerate(range(g0, g1)):
                by, bx = divmod(blk, geo.px)
                out[b, :, by * ky * s:(by + 1) * ky * s, bx * kx * s:(bx + 1) * kx * s] = warped[j]
    return out

"""Feature swapping: the matched reference patches stitched into the maps M at relu3_1,
relu2_1 and relu1_1, overlaps averaged, with one ``F.embedding_bag`` per layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from refsr.features.vgg import STRIDE
from refsr.matching.correspondence import Correspondence
from refsr.matching.patches import as_chw

#: The matched layer (its 3x3 patches drive every swap) and its image stride.
MATCH_LAYER = "relu3_1"
RELU3_STRIDE = STRIDE[MATCH_LAYER]
#: Swapped layers, in the order the texture transfer consumes them, and their scale
#: relative to relu3_1 (patches of 3s x 3s with stride s).
SWAP_SCALES = {layer: RELU3_STRIDE // STRIDE[layer] for layer in ("relu3_1", "relu2_1", "relu1_1")}


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
    def bags(a: int, b: int) -> tuple[Tensor, Tensor]:
        wd = width if isinstance(width, int) else width[:, a:b]
        return _bags(top_left[:, a:b], wd, s, p, table.dtype)
    return _stitch_bands(table, tuple(top_left.shape), s, p, max_mb, bags)


def _stitch_bands(table: Tensor, bhw: tuple[int, int, int], s: int, p: int, max_mb: float, bags) -> Tensor:
    """The stitching of :func:`_stitch`, in bands of output rows that fit ``max_mb``;
    ``bags(a, b)`` gives the table rows and weights of content rows ``a:b``."""
    B, H, W = bhw
    C = table.shape[1] // s
    per_row = B * W * s * p * p * (8 + table.element_size())  # bag indices + weights per output block row
    band = max(1, min(H, int(max_mb * 2**20) // max(1, per_row)))
    if band >= H:
        idx, wts = bags(0, H)
        out = F.embedding_bag(idx, table, mode="sum", per_sample_weights=wts)
        return out.view(B, H * s, W * s, C).permute(0, 3, 1, 2)
    r = p // 2
    out = table.new_empty(B, H * s, W * s, C)
    for y0 in range(0, H, band):  # bands of output rows, each with the content rows it needs
        y1 = min(H, y0 + band)
        a, b = max(0, y0 - r), min(H, y1 + r)
        idx, wts = bags(a, b)
        rows = F.embedding_bag(idx, table, mode="sum", per_sample_weights=wts).view(B, (b - a) * s, W * s, C)
        out[:, y0 * s:y1 * s] = rows[:, (y0 - a) * s:(y1 - a) * s]
    return out.permute(0, 3, 1, 2)


def _cell_bags(cells: Tensor, s: int, p: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """:func:`_bags` over a table of gathered blocks: ``cells`` (``B x H x W x p*p``) holds, for
    each content position, the table block of each cell ``(dy, dx)`` of its matched patch;
    block ``b``'s pixel row ``sy`` is table row ``b * s + sy``."""
    B, H, W, pp = cells.shape
    r = p // 2
    x = F.pad(cells.permute(0, 3, 1, 2), (r, r, r, r), value=-1)
    # output block (Y, X) takes cell (dy, dx) of content position (Y + r - dy, X + r - dx)
    ids = torch.stack([x[:, dy * p + dx, 2 * r - dy:2 * r - dy + H, 2 * r - dx:2 * r - dx + W]
                       for dy in range(p) for dx in range(p)], -1)[:, :, None]  # B x H x 1 x W x pp
    sy = torch.arange(s, device=cells.device)[:, None, None]
    idx = ids.clamp_min(0) * s + sy
    weights = (ids >= 0).to(dtype)
    weights /= weights.sum(-1, keepdim=True)
    return idx.reshape(-1, pp), weights.expand(B, H, s, W, pp).reshape(-1, pp)


@torch.no_grad()
def swap_cells(corr: Correspondence, cells: Tensor, blocks: dict[str, Tensor],
               out_hw: tuple[int, int] | None = None, max_mb: float = 256) -> dict[str, Tensor]:
    """:func:`swap` from only the reference blocks the correspondence uses.

    ``cells`` (``H x W x p*p``, int64): for each content position, the row in ``blocks`` of
    each relu3_1 cell ``(gy + dy, gx + dx)`` of its matched patch; ``blocks[layer]``
    (``n x s x s x C``): that cell's ``s x s`` block of φ(Ref) at ``layer``. Equal to
    :func:`swap` on the whole maps (:func:`refsr.matching.transfer.transfer` gathers the blocks
    tile by tile, so no whole reference map is ever held).
    """
    H, W = corr.index.shape
    out_h, out_w = out_hw if out_hw is not None else (RELU3_STRIDE * H, RELU3_STRIDE * W)
    if (out_h // RELU3_STRIDE, out_w // RELU3_STRIDE) != (H, W):
        raise ValueError(f"out_hw {out_hw} does not match the {H}x{W} relu3_1 correspondence")
    out = {}
    for layer, s in SWAP_SCALES.items():
        if layer not in blocks:
            continue
        blk = blocks[layer]
        table = blk.reshape(blk.shape[0] * s, s * blk.shape[-1])
        M = _stitch_bands(table, (1, H, W), s, corr.patch, max_mb,
                          lambda a, b, s=s, dt=table.dtype: _cell_bags(cells[None, a:b], s, corr.patch, dt))
        out[layer] = _fit_output(M, out_h, out_w, s)
    return out


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
            m = as_chw(f[layer], f"reference {i} {layer}").to(dev)
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


def swap_batch(corrs: list[Correspondence], ref_feats: dict[str, Tensor],
               out_hw: tuple[int, int] | None = None, max_mb: float = 256,
               differentiable: bool = False) -> dict[str, Tensor]:
    """:func:`swap` for a batch: sample ``b`` has one reference, ``ref_feats[layer][b]``.

    ``ref_feats``: layer -> ``B x C x Hm x Wm``; all correspondences must share their size
    and reference shape (a training batch). Returns layer -> ``B x C x h x w``, equal to
    stacking :func:`swap` of each sample, in one stitching call per layer. With
    ``differentiable`` gradients flow from the maps back into ``ref_feats`` (the indices stay
    constants): TTSR trains its texture extractor through the transferred textures.
    """
    with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
        return _swap_batch(corrs, ref_feats, out_hw, max_mb)


def _swap_batch(corrs: list[Correspondence], ref_feats: dict[str, Tensor],
                out_hw: tuple[int, int] | None, max_mb: float) -> dict[str, Tensor]:
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


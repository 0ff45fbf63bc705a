"""From images to swapped maps: Ref down-up, VGG19 features, matching, swapping.

Images are ``1 x 3 x H x W`` tensors in [0, 1]. :func:`correspond` matches φ(LR↑) against
φ(Ref↓↑) at relu3_1; :func:`transfer` adds the swapped maps of φ(Ref).
"""

from __future__ import annotations

import logging
import math
import uuid

import numpy as np
import torch
from torch import Tensor

from refsr.core.errors import RefsrError
from refsr.core.imageio import MIN_SIDE, to_tensor
from refsr.core.progress import progress
from refsr.data.resize import down_up
from refsr.features.vgg import CHANNELS, STRIDE
from refsr.matching.cache import FeatureCache, combine, key_of
from refsr.matching.correspondence import Correspondence
from refsr.matching.exact import match_exact_bands
from refsr.matching.search import match
from refsr.matching.stitch import MATCH_LAYER, RELU3_STRIDE, SWAP_SCALES, swap_cells

log = logging.getLogger(__name__)


def _as_image(img: Tensor, what: str) -> Tensor:
    """Accept ``3 x H x W`` or ``1 x 3 x H x W`` in [0, 1]; return ``1 x 3 x H x W``."""
    if img.dim() == 3:
        img = img[None]
    if img.dim() != 4 or img.shape[:2] != (1, 3):
        raise ValueError(f"{what}: expected 1 x 3 x H x W, got {tuple(img.shape)}")
    return img


def _check_ref_image(ref: Tensor, i: int) -> None:
    h, w = ref.shape[-2:]
    if h < MIN_SIDE or w < MIN_SIDE:
        raise RefsrError("reference", f"reference {i} is {w}x{h} px, smaller than one 3x3 patch "
                                      f"at relu3_1 ({MIN_SIDE}x{MIN_SIDE} px)")


def ref_down_up(ref: Tensor, scale: int = 4) -> Tensor:
    """``Ref↓↑``: MATLAB bicubic down and up by ``scale`` on the uint8 image (mod-cropped).

    ``ref`` is ``1 x 3 x H x W`` in [0, 1]; returns the same layout, dtype and device.
    """
    ref = _as_image(ref, "reference")
    arr = (ref[0].detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    out = torch.from_numpy(np.ascontiguousarray(down_up(arr, scale))).permute(2, 0, 1)[None]
    return out.to(device=ref.device, dtype=ref.dtype) / 255


def extract_features(vgg, img: Tensor, layers: tuple[str, ...]) -> dict[str, Tensor]:
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

    ``refs`` are the original references (any sizes >= ``MIN_SIDE`` = 12 px); their ``Ref↓↑`` is made with
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
    content = extract_features(vgg, lr_up, layer)["relu3_1"]
    cands = [extract_features(vgg, _as_image(r, "Ref↓↑"), layer)["relu3_1"] for r in refs_down_up]
    return match(content, cands, patch=3, max_mb=max_mb, mode=mode, approx=approx)


# ----------------------------------------------------------------------------- bounded transfer
#
# A reference's features are the big part of SRNTT's inference: relu1_1 of a 4000x3000 photo
# alone is 64 ch x 12 Mpx x 4 B = 3 GB. So :func:`transfer` never holds a whole reference
# map: φ(Ref↓↑) at relu3_1 is computed in horizontal bands that the exact search consumes one
# after the other (:func:`refsr.matching.exact.match_exact_bands`), and φ(Ref) only at the
# relu3_1 cells the correspondence uses, tile by tile (:func:`refsr.matching.stitch.swap_cells`).
# Each tile is run through VGG19 with a HALO of context, so its features equal the whole
# image's.

#: Image pixels of context around a tile: a relu3_1 position sees 10 px before and 13 px after
#: its 4-px block; a multiple of 4 keeps the tile's pooling aligned with the whole image's.
HALO = 16
#: Peak bytes per image pixel of VGG19 up to relu3_1 in float32 (relu1_1 kept, conv1_2 and its
#: ReLU alive at once, about 200 channels at full resolution, plus allocator slack).
VGG_BYTES_PER_PX = 1024
#: Smallest tile side (image px) and band height (relu3_1 grid rows): below these the halos
#: cost more than the tiles (the floor of the memory bound).
MIN_TILE, MIN_BAND = 64, 8


def _hw(img) -> tuple[int, int]:
    return tuple(img.shape[:2]) if isinstance(img, np.ndarray) else tuple(img.shape[-2:])


def _region(img, y0: int, y1: int, x0: int, x1: int, device) -> Tensor:
    if isinstance(img, np.ndarray):  # uint8 H x W x 3: only the tile becomes float
        return to_tensor(img[y0:y1, x0:x1], device)
    return _as_image(img, "image")[..., y0:y1, x0:x1].to(device)


def features_region(vgg, img, layers: tuple[str, ...], y0: int, y1: int, x0: int, x1: int,
                    device=None) -> dict[str, Tensor]:
    """φ(img) over image rows ``y0:y1``, columns ``x0:x1`` (multiples of 4, or the image's
    edge), equal to the same part of φ of the whole image: computed on the region plus
    :data:`HALO` pixels of context. ``img``: ``1 x 3 x H x W`` in [0, 1] or uint8 ``H x W x 3``."""
    H, W = _hw(img)
    ya, yb, xa, xb = max(0, y0 - HALO), min(H, y1 + HALO), max(0, x0 - HALO), min(W, x1 + HALO)
    feats = extract_features(vgg, _region(img, ya, yb, xa, xb, device), layers)
    out = {}
    for name in layers:
        s = STRIDE[name]
        oy, ox = (y0 - ya) // s, (x0 - xa) // s
        ey = None if y1 >= H else oy + (y1 - y0) // s
        ex = None if x1 >= W else ox + (x1 - x0) // s
        out[name] = feats[name][..., oy:ey, ox:ex]
    return out


def tile_side(max_mb: float) -> int:
    """Side (image px, a multiple of 4) of the tiles whose VGG19 pass fits ``max_mb`` with its
    halo; never below :data:`MIN_TILE`."""
    side = int(math.sqrt(max_mb * 2**20 / VGG_BYTES_PER_PX)) - 2 * HALO
    return max(MIN_TILE, side // RELU3_STRIDE * RELU3_STRIDE)


def _fits(h: int, w: int, budget: float) -> bool:
    """Whether a VGG19 pass over ``h x w`` image px with its halos fits ``budget`` bytes."""
    return (h + 2 * HALO) * (w + 2 * HALO) * VGG_BYTES_PER_PX <= budget


def _spans(n: int, step: int) -> list[tuple[int, int]]:
    """``0:n`` in pieces of ``step`` (a multiple of 4); a last piece under 4 joins the one before."""
    cuts = list(range(0, n, step)) + [n]
    if len(cuts) > 2 and n - cuts[-2] < RELU3_STRIDE:
        del cuts[-2]
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def _candidate_bands(vgg, imgs_du: list, shapes: list[tuple[int, int]], max_mb: float, device,
                     patch: int, names: list[str]):
    """``(i, g0, band)`` for :func:`~refsr.matching.exact.match_exact_bands`: φ(Ref↓↑) at relu3_1
    in horizontal bands of about ``max_mb / 4`` (:data:`MIN_BAND` grid rows at least), each
    computed in tiles of :func:`tile_side` ``(max_mb / 4)``; logs progress."""
    tile, budget = tile_side(max_mb / 4), max_mb / 4 * 2**20
    jobs = []
    for i, (img, (h3, w3)) in enumerate(zip(imgs_du, shapes, strict=True)):
        per_row = w3 * CHANNELS[MATCH_LAYER] * 4 * 2  # the band and its pixel rows
        rows = int(budget) // per_row
        if not _fits(*_hw(img), budget):  # bands of about one tile's height
            rows = min(rows, tile // RELU3_STRIDE)
        rows = max(MIN_BAND, rows - (patch - 1))
        gh = h3 - patch + 1
        jobs += [(i, g0, min(gh, g0 + rows)) for g0 in range(0, gh, rows)]
    for i, g0, g1 in progress(jobs, desc="matching reference bands", logger=log) if len(jobs) > 4 else jobs:
        img, (h3, _) = imgs_du[i], shapes[i]
        H, W = _hw(img)
        r1 = g1 + patch - 1
        y0, y1 = RELU3_STRIDE * g0, (RELU3_STRIDE * r1 if r1 < h3 else H)
        step = W if _fits(y1 - y0, W, budget) else tile
        cols = [features_region(vgg, img, (MATCH_LAYER,), y0, y1, x0, x1, device)[MATCH_LAYER]
                for x0, x1 in _spans(W, step)]
        band = torch.cat(cols, dim=-1)[0]
        if band.shape[1] < r1 - g0:
            raise ValueError(f"{names[i]}: band {g0}:{r1} of a {h3}-row map has {band.shape[1]} rows")
        yield i, g0, band[:, : r1 - g0]


def _needed_cells(corr: Correspondence) -> tuple[Tensor, Tensor]:
    """The relu3_1 cells the swap reads: ``(keys, cells)``, ``keys`` sorted unique
    ``start_i + Y * w3_i + X`` over the references, ``cells`` (``H x W x p*p``) the position in
    ``keys`` of cell ``(gy + dy, gx + dx)`` of each content position's matched patch."""
    p, index = corr.patch, corr.index
    dev = index.device
    if len(corr.ref_shapes) == 1:
        gw = corr.ref_shapes[0][1] - p + 1
        rid, gy, gx = torch.zeros_like(index), index // gw, index % gw
    else:
        rid, (gy, gx) = corr.ref_id, corr.grid_pos
    starts = torch.tensor(_cell_starts(corr.ref_shapes)[:-1], device=dev)[rid]
    w3 = torch.tensor([w for _, w in corr.ref_shapes], device=dev)[rid]
    d = torch.arange(p, device=dev)
    ys, xs = gy[..., None] + d.repeat_interleave(p), gx[..., None] + d.repeat(p)
    keys, cells = torch.unique(starts[..., None] + ys * w3[..., None] + xs, return_inverse=True)
    return keys, cells


def _cell_starts(shapes) -> list[int]:
    out = [0]
    for h3, w3 in shapes:
        out.append(out[-1] + h3 * w3)
    return out


def _gather_blocks(vgg, img, cells: Tensor, w3: int, tile: int, tile_budget: float, device, blocks: dict,
                   row0: int, cache: FeatureCache, tag: tuple) -> None:
    """Write the ``s x s`` block of φ(img) of each relu3_1 cell ``cells`` (flat ``Y * w3 + X``)
    into ``blocks[layer][row0 + k]``, running VGG19 only over the tiles that hold such cells
    (each tile's features remembered in ``cache`` under ``tag``, the image's key)."""
    H, W = _hw(img)
    if _fits(H, W, tile_budget):  # one pass over the whole image
        tile = max(H, W) // RELU3_STRIDE * RELU3_STRIDE + RELU3_STRIDE
    tc = tile // RELU3_STRIDE
    ys, xs = cells // w3, cells % w3
    tkey = (ys // tc) * (w3 // tc + 1) + xs // tc
    order = torch.argsort(tkey)
    tiles, counts = torch.unique_consecutive(tkey[order], return_counts=True)
    layers = tuple(SWAP_SCALES)
    for t, pos in zip(tiles.tolist(), torch.split(order, counts.tolist()), strict=True):
        ty, tx = divmod(t, w3 // tc + 1)
        y0, x0 = RELU3_STRIDE * ty * tc, RELU3_STRIDE * tx * tc
        y1, x1 = min(H, y0 + tile), min(W, x0 + tile)
        feats = cache.get(("tile", *tag, y0, y1, x0, x1),
                          lambda y0=y0, y1=y1, x0=x0, x1=x1: features_region(vgg, img, layers, y0, y1, x0, x1, device))
        ly, lx = ys[pos] - ty * tc, xs[pos] - tx * tc
        for layer, s in SWAP_SCALES.items():
            m = feats[layer][0].permute(1, 2, 0)  # h x w x C
            a = torch.arange(s, device=m.device)
            blk = m[(ly[:, None] * s + a)[:, :, None], (lx[:, None] * s + a)[:, None, :]]
            if layer not in blocks:
                blocks[layer] = blk.new_empty(blocks["_n"], s, s, blk.shape[-1])
            blocks[layer][row0 + pos.to(m.device)] = blk


def vgg_token(vgg) -> str:
    """A name for ``vgg`` in cache keys, fixed for the object's life (not its ``id``, which a
    later object may reuse)."""
    token = getattr(vgg, "_refsr_cache_token", None)
    if token is None:
        token = f"vgg-{uuid.uuid4().hex}"
        object.__setattr__(vgg, "_refsr_cache_token", token)
    return token


def transfer(lr_up: Tensor, refs: list, vgg, max_mb: float = 256,
             refs_down_up: list | None = None, mode: str = "exact",
             approx=None, names: list[str] | None = None,
             cache: FeatureCache | None = None) -> tuple[Correspondence, dict[str, Tensor]]:
    """:func:`correspond` then :func:`swap` with φ(Ref) at relu1_1, relu2_1, relu3_1, with the
    reference side bounded by ``max_mb`` (see the comment above :data:`HALO`).

    ``refs`` / ``refs_down_up``: ``1 x 3 x H x W`` tensors in [0, 1] or uint8 ``H x W x 3``
    arrays (only tiles of which become float). ``cache`` (:class:`~refsr.matching.cache.FeatureCache`)
    remembers, by the bytes of the inputs, φ(LR↑), each reference's exact search and the φ(Ref)
    tiles it read, and the result: another level or model of the same image with the same
    VGG19 and budget reuses them (``ALL`` combines the per-reference searches); the result is the
    same with or without it. Memory: about ``max_mb`` (tiles and bands a
    quarter each, the search's blocks half; never below a 64-px tile and an 8-row band), plus
    the inputs, the output-sized content maps and swapped maps, and the gathered blocks (at
    most 9 per output relu3_1 position, fewer where neighbours match neighbours).
    ``mode="approximate"`` needs each φ(Ref↓↑) at relu3_1 whole (256 ch x Hr/4 x Wr/4 x 4 B):
    a reference whose map is over ``max_mb`` is refused before any work. ``names``: what an
    error calls each reference (default ``reference i``).
    """
    lr_up = _as_image(lr_up, "lr_up")
    if min(lr_up.shape[-2:]) < RELU3_STRIDE:
        raise RefsrError("lr", f"LR↑ image {lr_up.shape[-1]}x{lr_up.shape[-2]} px is smaller "
                               f"than one relu3_1 position ({RELU3_STRIDE} px)")
    if not refs:
        raise RefsrError("reference", "at least one reference is needed")
    names = list(names) if names is not None else [f"reference {i}" for i in range(len(refs))]
    refs = [r if isinstance(r, np.ndarray) else _as_image(r, names[i]) for i, r in enumerate(refs)]
    for i, ref in enumerate(refs):
        h, w = _hw(ref)
        if h < MIN_SIDE or w < MIN_SIDE:
            raise RefsrError(names[i], f"reference is {w}x{h} px, smaller than one 3x3 patch "
                                       f"at relu3_1 ({MIN_SIDE}x{MIN_SIDE} px)")
    if refs_down_up is None:
        refs_down_up = [down_up(r) if isinstance(r, np.ndarray) else ref_down_up(r) for r in refs]
    elif len(refs_down_up) != len(refs):
        raise ValueError(f"{len(refs_down_up)} Ref↓↑ images for {len(refs)} references")
    shapes = []
    for i, (ref, du) in enumerate(zip(refs, refs_down_up, strict=True)):
        (h, w), (hd, wd) = _hw(ref), _hw(du)
        if (h // RELU3_STRIDE, w // RELU3_STRIDE) != (hd // RELU3_STRIDE, wd // RELU3_STRIDE):
            raise ValueError(f"Ref↓↑ {i} is {(hd, wd)}, reference {(h, w)}: their relu3_1 grids differ")
        shapes.append((h // RELU3_STRIDE, w // RELU3_STRIDE))
    if mode == "approximate":
        for name, (h3, w3) in zip(names, shapes, strict=True):
            need = h3 * w3 * CHANNELS[MATCH_LAYER] * 4 / 2**20
            if need > max_mb:
                raise RefsrError(name, f"approximate matching holds the reference's whole relu3_1 map "
                                       f"({CHANNELS[MATCH_LAYER]} ch x {w3}x{h3}): {math.ceil(need)} MB, "
                                       f"over the budget of {max_mb:g} MB; raise --max-mb / matching.max_mb "
                                       f"to {math.ceil(need)}, or match exactly (--match-mode exact / "
                                       f"matching.mode: exact), which streams the reference")
    cache = cache if cache is not None else FeatureCache(0)
    tag = (vgg_token(vgg), float(max_mb))
    ckey = key_of(lr_up)
    rkeys = [key_of(r) for r in refs]
    dkeys = [key_of(d) for d in refs_down_up]
    if mode not in ("exact", "approximate"):
        raise RefsrError("matching mode", f"must be exact or approximate, got {mode!r}")
    approx_key = repr(sorted(approx.items())) if isinstance(approx, dict) else repr(approx)
    return cache.get(("transfer", *tag, mode, approx_key if mode == "approximate" else "", ckey,
                      tuple(rkeys), tuple(dkeys), tuple(shapes)),
                     lambda: _transfer(lr_up, refs, refs_down_up, vgg, max_mb, mode, approx, names, shapes,
                                       cache, tag, ckey, rkeys, dkeys))


def _transfer(lr_up, refs, refs_down_up, vgg, max_mb, mode, approx, names, shapes, cache, tag, ckey, rkeys,
              dkeys) -> tuple[Correspondence, dict[str, Tensor]]:
    patch, device = 3, lr_up.device
    content = cache.get(("content", *tag, ckey),
                        lambda: extract_features(vgg, lr_up, (MATCH_LAYER,))[MATCH_LAYER])
    if mode == "approximate":
        bands = _candidate_bands(vgg, refs_down_up, shapes, max_mb, device, patch, names)
        whole = {}
        for i, _, band in bands:
            whole.setdefault(i, []).append(band if not whole.get(i) else band[:, patch - 1:])
        cands = [torch.cat(whole[i], dim=1) for i in range(len(refs))]
        corr = match(content, cands, patch=patch, max_mb=max_mb, mode=mode, approx=approx)
        del cands, whole
    else:  # each reference's exact search on its own, merged (bit-identical to one joint scan)
        corr = combine([cache.get(
            ("match", *tag, ckey, dkeys[i], shapes[i]),
            lambda i=i: match_exact_bands(content, _candidate_bands(vgg, [refs_down_up[i]], [shapes[i]], max_mb,
                                                                    device, patch, [names[i]]),
                                          [shapes[i]], patch=patch, max_mb=max_mb / 2))
            for i in range(len(refs))])
    keys, cells = _needed_cells(corr)
    starts = _cell_starts(corr.ref_shapes)
    blocks: dict = {"_n": int(keys.numel())}
    tile = tile_side(max_mb / 4)
    for i, img in enumerate(refs):
        lo, hi = (int(torch.searchsorted(keys, v)) for v in (starts[i], starts[i + 1]))
        if hi > lo:
            _gather_blocks(vgg, img, keys[lo:hi] - starts[i], corr.ref_shapes[i][1], tile, max_mb / 4 * 2**20,
                           device, blocks, lo, cache, (*tag, rkeys[i]))
    del blocks["_n"]
    return corr, swap_cells(corr, cells, blocks, out_hw=tuple(lr_up.shape[-2:]), max_mb=max_mb)

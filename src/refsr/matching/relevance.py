"""TTSR's relevance search and texture transfer (researchmm/TTSR, ``model/SearchTransfer.py``),
streamed through refsr's matching instead of the released full ``N_ref x N_lr`` matrix.

Released: the 3x3 patches (``F.unfold`` with padding 1: one per position, zero border) of
LTE(LR↑) and of LTE(Ref↓↑) at level 3 (relu3_1), both L2-normalised; ``R`` = all their inner
products, a full ``(Hr·Wr) x (H·W)`` matrix; hard attention = argmax over the reference, soft
attention ``S`` = the max. Transfer: the matched ``3s x 3s`` patches (s = 1, 2, 4) of LTE(Ref)
at levels 3 / 2 / 1, unfolded with padding ``s`` and stride ``s``, folded back at the content
positions and divided by 9.

Here: the reference level-3 map is zero-padded by 1, so the valid 3x3 patches of the padded map
are exactly the released candidates (candidate ``j`` = the patch centred at reference pixel
``j``: the same index as the released ``R_lv3_star_arg``); :func:`refsr.matching.match` finds
the argmax in blocks under ``max_mb`` (it zero-pads the content itself, as the released unfold
does), over any number of references, and its ``cosine`` is ``S``. Transfer is
:func:`refsr.matching.swap` on the reference maps padded by ``s``; swap averages each output
block over the content positions covering it, the released fold divides by 9 whatever the
count, so the maps are rescaled by count / 9 (1 except on the outermost cell ring).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from refsr.matching.correspondence import Correspondence
from refsr.matching.patches import as_chw
from refsr.matching.search import match
from refsr.matching.stitch import MATCH_LAYER, RELU3_STRIDE, SWAP_SCALES, swap, swap_batch

PATCH = 3


def search(content: Tensor, refs: list[Tensor], max_mb: float = 256, mode: str = "exact",
           approx=None) -> Correspondence:
    """Hard attention (``index``, into the references' unpadded ``Hr x Wr`` grids, numbered
    consecutively) and soft attention (``cosine``) of every content position.

    ``content``: LTE(LR↑) level 3, ``C x H x W``; ``refs``: LTE(Ref↓↑) level 3 of each reference,
    ``C x Hr x Wr``. No gradients (see :func:`soft_attention` for a differentiable ``S``).
    """
    padded = [F.pad(as_chw(r, f"reference {i}"), (1, 1, 1, 1)) for i, r in enumerate(refs)]
    return match(as_chw(content, "content"), padded, patch=PATCH, max_mb=max_mb, mode=mode, approx=approx)


def _coverage(maps: dict[str, Tensor], h: int, w: int) -> dict[str, Tensor]:
    """The released fold's ``/ 9`` from swap's overlap average: multiply by count / 9."""
    ones = torch.ones(1, 1, h, w, dtype=next(iter(maps.values())).dtype,
                      device=next(iter(maps.values())).device)
    cover = F.avg_pool2d(ones, PATCH, stride=1, padding=PATCH // 2, count_include_pad=True)  # count / 9
    out = {}
    for layer, m in maps.items():
        s = SWAP_SCALES[layer]
        out[layer] = m * cover.repeat_interleave(s, dim=-2).repeat_interleave(s, dim=-1)
    return out


def _padded(levels: dict[str, Tensor]) -> dict[str, Tensor]:
    return {layer: F.pad(levels[layer], (s, s, s, s)) for layer, s in SWAP_SCALES.items()}


def transfer(corr: Correspondence, ref_levels: list[dict[str, Tensor]], max_mb: float = 256) -> dict[str, Tensor]:
    """Transferred textures ``T`` (``1 x C x h x w``) at relu3_1 / relu2_1 / relu1_1 (TTSR's
    levels 3 / 2 / 1) from each reference's LTE(Ref) maps; no gradients."""
    H, W = corr.index.shape
    padded = [_padded({k: as_chw(v, f"reference {k}") for k, v in f.items()}) for f in ref_levels]
    maps = swap(corr, padded, out_hw=(RELU3_STRIDE * H, RELU3_STRIDE * W), max_mb=max_mb)
    return _coverage(maps, H, W)


def transfer_batch(corrs: list[Correspondence], ref_levels: dict[str, Tensor], max_mb: float = 256,
                   differentiable: bool = True) -> dict[str, Tensor]:
    """:func:`transfer` for a training batch (one reference per sample, ``B x C x Hm x Wm`` per
    level); gradients flow into ``ref_levels`` (the texture extractor trains through them)."""
    H, W = corrs[0].index.shape
    maps = swap_batch(corrs, _padded(ref_levels), out_hw=(RELU3_STRIDE * H, RELU3_STRIDE * W),
                      max_mb=max_mb, differentiable=differentiable)
    return _coverage(maps, H, W)


def soft_attention(content: Tensor, ref: Tensor, corrs: list[Correspondence]) -> Tensor:
    """Differentiable ``S`` (``B x 1 x H x W``): the cosine of each content patch and its matched
    reference patch, both zero-padded 3x3 patches as released, gathered at the found indices
    (``B x 9C x (H·W)`` memory, never the relevance matrix). ``content``: ``B x C x H x W``,
    ``ref``: ``B x C x Hr x Wr`` (level 3, one reference per sample)."""
    B, _, H, W = content.shape
    c = F.normalize(F.unfold(content, PATCH, padding=PATCH // 2), dim=1)
    r = F.normalize(F.unfold(ref, PATCH, padding=PATCH // 2), dim=1)
    idx = torch.stack([corr.index.reshape(-1).to(r.device) for corr in corrs])
    matched = r.gather(2, idx[:, None, :].expand(-1, r.shape[1], -1))
    return (c * matched).sum(1).view(B, 1, H, W)


def full_matrix_bytes(h: int, w: int, hr: int, wr: int, itemsize: int = 4) -> int:
    """Bytes of the released search's relevance matrix ``R`` (``hr/4·wr/4 x h/4·w/4`` float32) for
    an ``h x w`` LR↑ and an ``hr x wr`` reference image, which ``SearchTransfer.forward`` holds
    whole; its other temporaries (the unfolded, normalised patches, ``9·256`` rows by the number
    of positions on each side, and the matrix's max / argmax) come on top."""
    n, nr = (h // RELU3_STRIDE) * (w // RELU3_STRIDE), (hr // RELU3_STRIDE) * (wr // RELU3_STRIDE)
    return itemsize * n * nr


__all__ = ["MATCH_LAYER", "full_matrix_bytes", "search", "soft_attention", "transfer", "transfer_batch"]

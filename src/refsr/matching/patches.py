"""Feature maps as pixel rows, patch norms and input checks shared by the exact and the
approximate search (:mod:`refsr.matching.exact`, :mod:`refsr.matching.approximate`).

A ``C x H x W`` map is handled as *pixel rows* ``(H*W) x C`` (row ``y * W + x``); the content
map is zero-padded by ``p // 2`` first, so that every content position has a full patch
(see :mod:`refsr.matching` for the conventions).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from refsr.core.errors import RefsrError
from refsr.matching.correspondence import Correspondence

#: Norm floor for patch normalisation (``tf.nn.l2_normalize``'s 1e-12 on the squared norm).
EPS = 1e-6


def as_chw(t: Tensor, what: str) -> Tensor:
    """Accept ``C x H x W`` or ``1 x C x H x W``."""
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3:
        raise ValueError(f"{what}: expected C x H x W or 1 x C x H x W, got {tuple(t.shape)}")
    return t


def pixel_rows(t: Tensor) -> Tensor:
    """``C x H x W`` as contiguous pixel rows ``(H*W) x C``: a view of a channels-last map, else one copy."""
    return t.permute(1, 2, 0).reshape(-1, t.shape[0]).contiguous()


def padded_rows(content: Tensor, r: int) -> Tensor:
    """The content zero-padded by ``r`` as pixel rows ``((H+2r)*(W+2r)) x C`` (one copy)."""
    C, H, W = content.shape
    out = content.new_zeros(H + 2 * r, W + 2 * r, C)
    out[r:r + H, r:r + W] = content.permute(1, 2, 0)
    return out.view(-1, C)


def box_sum(x: Tensor, p: int) -> Tensor:
    """Sums over the valid ``p x p`` windows of an ``H x W`` map."""
    if p == 1:
        return x
    return F.avg_pool2d(x[None, None], p, stride=1, divisor_override=1)[0, 0]


def patch_norms(rows: Tensor, h: int, w: int, p: int) -> Tensor:
    """L2 norm of every valid ``p x p`` patch of a map given as pixel rows: ``(h-p+1) x (w-p+1)``."""
    return box_sum(torch.linalg.vector_norm(rows, dim=1).square_().view(h, w), p).clamp_min(0).sqrt()



def check_refs(content: Tensor, refs: list[Tensor], patch: int) -> list[Tensor]:
    """Validate channel counts and sizes; return refs as ``C x Hr x Wr``."""
    if patch < 1 or patch % 2 == 0:
        raise ValueError(f"patch must be a positive odd number, got {patch}")
    if not refs:
        raise RefsrError("reference", "at least one reference is needed")
    out = []
    for i, ref in enumerate(refs):
        ref = as_chw(ref, f"reference {i}")
        if ref.shape[0] != content.shape[0]:
            raise ValueError(f"reference {i} has {ref.shape[0]} channels, content {content.shape[0]}")
        if ref.shape[1] < patch or ref.shape[2] < patch:
            raise RefsrError("reference", f"reference {i}: feature map {ref.shape[2]}x{ref.shape[1]} "
                                          f"is smaller than one {patch}x{patch} patch")
        out.append(ref.to(device=content.device, dtype=content.dtype))
    return out


def check_content(content: Tensor) -> Tensor:
    content = as_chw(content, "content")
    if content.shape[1] < 1 or content.shape[2] < 1:
        raise RefsrError("lr", f"content feature map is empty ({content.shape[2]}x{content.shape[1]})")
    return content


def content_norms(padded: Tensor, H: int, W: int, patch: int) -> Tensor:
    """``H x W`` norms of the zero-padded content patches (from pixel rows of the padded map)."""
    r = patch // 2
    return patch_norms(padded, H + 2 * r, W + 2 * r, patch)


def finish(content: Tensor, padded: Tensor, refs: list, best: Tensor, arg: Tensor,
            patch: int) -> Correspondence:
    """The correspondence; ``refs`` are the reference maps or their ``(Hr, Wr)`` sizes."""
    H, W = content.shape[1:]
    shapes = tuple((int(t.shape[1]), int(t.shape[2])) if isinstance(t, Tensor) else (int(t[0]), int(t[1]))
                   for t in refs)
    cnorm = content_norms(padded, H, W, patch).reshape(-1)
    best, arg = best.reshape(-1), arg.reshape(-1)
    cosine = torch.where(cnorm > EPS, best / cnorm.clamp_min(EPS), torch.zeros_like(best))
    return Correspondence(index=arg.view(H, W), score=best.view(H, W),
                          ref_shapes=shapes,
                          cosine=cosine.view(H, W), patch=patch)


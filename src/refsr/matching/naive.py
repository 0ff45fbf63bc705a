"""The textbook SRNTT matching and stitching, for tests and benchmarks to compare against.

:func:`naive_match` builds every patch vector and the full ``N_content x N_ref`` score
matrix (what the public implementations do); :func:`naive_stitch` gathers every matched
``(p*s)^2`` patch and folds them with ``F.fold``, dividing by the overlap count. Both follow
the conventions of :mod:`refsr.matching` and are not used by the pipeline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from refsr.matching.correspondence import Correspondence
from refsr.matching.patches import EPS
from refsr.matching.stitch import SWAP_SCALES


def naive_bytes(n_content: int, n_ref: int, patch_dim: int, itemsize: int = 4) -> int:
    """Memory of :func:`naive_match`: the full score matrix and both patch matrices."""
    return itemsize * (n_content * n_ref + (n_content + n_ref) * patch_dim)


def naive_match(content: Tensor, refs: list[Tensor], patch: int = 3) -> Correspondence:
    """Full score matrix: zero-padded content patches vs L2-normalised reference patches."""
    r = patch // 2
    cp = F.unfold(content[None].contiguous(), patch, padding=r)[0]  # D x HW
    rp = torch.cat([F.unfold(ref[None].contiguous(), patch)[0] for ref in refs], dim=1)  # D x N_ref
    rp = rp / rp.norm(dim=0).clamp_min(EPS)
    score, index = (cp.T @ rp).max(dim=1)
    cnorm = cp.norm(dim=0)
    cosine = torch.where(cnorm > EPS, score / cnorm.clamp_min(EPS), torch.zeros_like(score))
    H, W = content.shape[1:]
    return Correspondence(index=index.view(H, W), score=score.view(H, W),
                          ref_shapes=tuple((int(t.shape[1]), int(t.shape[2])) for t in refs),
                          cosine=cosine.view(H, W), patch=patch)


def naive_stitch(corr: Correspondence, ref_feats: dict[str, Tensor]) -> dict[str, Tensor]:
    """Swapped maps of a one-reference ``corr`` by gather + ``F.fold`` + overlap count."""
    H, W = corr.index.shape
    p, r = corr.patch, corr.patch // 2
    gy, gx = corr.grid_pos
    out = {}
    for layer, s in SWAP_SCALES.items():
        m = ref_feats[layer].contiguous()
        C, k = m.shape[0], p * s
        d = torch.arange(k)
        start = (gy * s * m.shape[2] + gx * s).reshape(1, -1)
        idx = start + (d[:, None] * m.shape[2] + d[None, :]).reshape(-1, 1)
        cols = m.reshape(C, -1)[:, idx].reshape(1, C * k * k, -1)
        size = ((H + 2 * r) * s, (W + 2 * r) * s)
        acc = F.fold(cols, size, kernel_size=k, stride=s)
        cnt = F.fold(torch.ones(1, k * k, H * W), size, kernel_size=k, stride=s)
        crop = (..., slice(r * s, (r + H) * s), slice(r * s, (r + W) * s))
        out[layer] = acc[crop] / cnt[crop]
    return out

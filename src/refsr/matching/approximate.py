"""Approximate SRNTT patch matching: reduced descriptors, an inverted-file search, exact re-scoring.

``match(..., mode="approximate")`` (config ``matching.mode: approximate``) runs
:func:`match_approximate`, which returns the same :class:`~refsr.matching.Correspondence` as the
exact search (same indexing, same ``S*``/cosine definitions) in a fraction of the time:

1. **Descriptors.** Every 3x3 patch is projected onto a ``dims``-dimensional subspace in two
   cheap stages: each relu3_1 *pixel* (C = 256) onto its leading principal directions (about
   ``dims / 2`` of them, from the second-moment matrix of sampled content and reference
   pixels), then the concatenated 3x3 projections onto the leading directions of the
   resulting patch descriptors. Candidate descriptors are divided by the *exact* norm of the
   full patch, so their inner product with a content descriptor approximates ``S*``. The
   bases come from a seeded subspace iteration: the result is deterministic.
2. **Inverted file.** Candidate descriptors are clustered (spherical k-means, ``iters``
   rounds on a sample, about ``cluster_size`` candidates per cluster); each content position
   searches only the ``probes`` clusters whose centroids score highest for it (of those, the
   ones within ``probe_margin`` of the best), keeping its ``rescore`` best approximate
   candidates.
3. **Exact re-scoring.** Those candidates are scored exactly with the full patches (the
   same quantity :func:`refsr.matching.exact.match_exact` maximises); the best one is the match, and the
   returned ``score``/``cosine`` are exact for it.

The search visits about ``probes * cluster_size / N_ref`` of all (content, candidate) pairs
at ``dims`` instead of ``9 C`` multiply-adds each. Configured to cover everything
(``dims=0``: no reduction; one cluster, or ``rescore`` at least the number of candidates)
it returns the exact search's result. Memory: the descriptors (``dims`` floats per
position) and the running tables are input-sized; every score block fits in ``max_mb``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor

from refsr.core.config import defaults
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

#: Rows sampled to estimate each projection basis, and power steps of its subspace iteration.
SAMPLES = 2048
POWER_STEPS = 2
#: Positions per chunk of the descriptor projection (x4) and of the exact re-scoring:
#: small enough for the temporaries to stay in cache.
CHUNK = 1024
#: Rows per cluster that the k-means rounds see.
KMEANS_SAMPLE = 32


@dataclass(frozen=True)
class ApproxConfig:
    """Parameters of the approximate search: the schema's ``matching.approximate`` (where each
    is documented, with its default)."""

    #: Descriptor dimensions after the two projections; 0 = full patches (no reduction).
    dims: int
    #: Mean number of candidates per cluster of the inverted file.
    cluster_size: int
    #: Clusters searched per content position.
    probes: int
    #: Best approximate candidates re-scored exactly per content position.
    rescore: int
    #: k-means rounds.
    iters: int
    #: Of the ``probes`` best clusters, search only those whose centroid score is within this
    #: fraction of the best one's; 0 searches all ``probes``.
    probe_margin: float

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "probe_margin":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
                    raise ValueError(f"approximate matching: probe_margin must be a number >= 0, got {value!r}")
                continue
            low = 0 if f.name in ("dims", "iters") else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"approximate matching: {f.name} must be an integer >= {low}, got {value!r}")

    @classmethod
    def from_any(cls, value: ApproxConfig | dict | None) -> ApproxConfig:
        """``None`` -> the schema's defaults; a dict of (some) fields over those defaults; an
        :class:`ApproxConfig` as is."""
        if isinstance(value, cls):
            return value
        if value is None or isinstance(value, dict):
            unknown = set(value or {}) - {f.name for f in fields(cls)}
            if unknown:
                raise ValueError(f"approximate matching: unknown parameter(s) {sorted(unknown)}")
            return cls(**{**defaults("matching.approximate"), **(value or {})})
        raise TypeError(f"approximate matching config must be a dict or ApproxConfig, got {type(value).__name__}")


# ----------------------------------------------------------------------------- descriptors


def _basis(samples: Tensor, d: int, seed: int = 0) -> Tensor:
    """Orthonormal ``D x d`` basis of the leading principal directions of ``samples`` (``n x D``).

    Seeded subspace iteration on the (uncentred) second-moment matrix, then a small
    Rayleigh-Ritz step to order the directions; deterministic. The small eigenproblems are
    solved in float64.
    """
    D = samples.shape[1]
    g = samples.T @ samples
    k = min(D, d + 8)
    q = torch.randn(D, k, generator=torch.Generator().manual_seed(seed)).to(g)
    for _ in range(POWER_STEPS):  # orthonormalised through the small k x k Gram matrix
        q = g @ q
        lam, v = torch.linalg.eigh((q.T @ q).double())
        q = q @ (v / lam.clamp_min(lam.max() * 1e-10).sqrt()).to(q)
    _, v = torch.linalg.eigh((q.T @ g @ q).double())
    return (q @ v[:, -d:].flip(1).to(q)).contiguous()


def _sample(rows: list[Tensor], n: int) -> Tensor:
    """About ``n`` rows spread evenly over the given row matrices."""
    total = sum(r.shape[0] for r in rows)
    step = max(1, total // max(1, n))
    return torch.cat([r[::step] for r in rows])


def _patches(z: Tensor, h: int, w: int, p: int, rows: slice = slice(None)) -> Tensor:
    """Descriptors ``(n*(w-p+1)) x (p*p*d)`` (kernel-major) of the valid patches in patch-grid
    rows ``rows`` of a ``h x w`` map given as pixel rows ``(h*w) x d``."""
    gh, gw = h - p + 1, w - p + 1
    y0, y1, _ = rows.indices(gh)
    z = z.view(h, w, -1)
    parts = [z[y0 + dy:y1 + dy, dx:dx + gw] for dy in range(p) for dx in range(p)]
    return torch.cat(parts, -1).view((y1 - y0) * gw, -1)


def _sample_patches(z: Tensor, h: int, w: int, p: int, n: int) -> Tensor:
    """Descriptors of about ``n`` patches spread over the map (for a projection basis)."""
    gh, gw = h - p + 1, w - p + 1
    g = torch.arange(0, gh * gw, max(1, gh * gw // max(1, n)), device=z.device)
    offs = torch.tensor([dy * w + dx for dy in range(p) for dx in range(p)], device=z.device)
    rows = ((g // gw) * w + g % gw)[:, None] + offs[None, :]
    return z.index_select(0, rows.reshape(-1)).view(g.numel(), -1)


def _pixel_dims(dims: int) -> int:
    """Dimensions of the per-pixel projection for ``dims``-dimensional patch descriptors."""
    return max(4, dims // 2)


def _descriptors(padded: Tensor, H: int, W: int, ref_rows: list[Tensor], ref_shapes: list[tuple[int, int]],
                 p: int, dims: int, max_mb: float = 256) -> tuple[Tensor, Tensor]:
    """Content descriptors ``N_c x D`` and (unnormalised) candidate descriptors ``N_r x D``.

    Reduced: pixels are projected on a ``d1 = dims / 2``-dimensional basis, then the
    ``p*p*d1``-dimensional patch descriptors, built a band of patch rows at a time, on a
    second ``dims``-dimensional basis (both bases from samples, see :func:`_basis`).
    """
    C = padded.shape[1]
    r = p // 2
    maps = [(padded, H + 2 * r, W + 2 * r), *((rows, h, w) for rows, (h, w) in zip(ref_rows, ref_shapes,
                                                                                     strict=True))]
    if dims <= 0 or dims >= C * p * p:  # full patches: only sensible for small inputs
        cd, *rds = (_patches(z, h, w, p) for z, h, w in maps)
        return cd, torch.cat(rds)
    d1 = min(C, _pixel_dims(dims))
    basis = _basis(_sample([m[0] for m in maps], SAMPLES), d1)
    zs = [(z @ basis, h, w) for z, h, w in maps]
    if dims >= p * p * d1:
        cd, *rds = (_patches(z, h, w, p) for z, h, w in zs)
        return cd, torch.cat(rds)
    n = SAMPLES // len(zs) + 1
    basis = _basis(torch.cat([_sample_patches(z, h, w, p, n) for z, h, w in zs]), dims, seed=1)
    out = []
    for z, h, w in zs:
        gh, gw = h - p + 1, w - p + 1
        desc = z.new_empty(gh * gw, dims)
        band = max(1, min(gh, CHUNK * 4 // gw, int(max_mb * 2**20) // (2 * gw * p * p * d1 * z.element_size())))
        for y0 in range(0, gh, band):
            y1 = min(gh, y0 + band)
            torch.mm(_patches(z, h, w, p, slice(y0, y1)), basis, out=desc[y0 * gw:y1 * gw])
        out.append(desc)
    return out[0], torch.cat(out[1:])


# ----------------------------------------------------------------------------- inverted file


def _rows_per_block(cols: int, max_mb: float, itemsize: int, factor: int = 2) -> int:
    """Rows of a ``rows x cols`` score block (plus ``factor - 1`` like it) that fit in ``max_mb``."""
    return max(1, int(max_mb * 2**20) // max(1, factor * cols * itemsize))


def _assign(x: Tensor, centroids: Tensor, k: int, max_mb: float) -> Tensor:
    """Indices of the ``k`` best-scoring centroids for every row of ``x`` (``n x k``), blockwise."""
    out = torch.empty(x.shape[0], k, dtype=torch.int64, device=x.device)
    step = _rows_per_block(centroids.shape[0], max_mb, x.element_size())
    for i in range(0, x.shape[0], step):
        s = x[i:i + step] @ centroids.T
        out[i:i + step] = s.argmax(1, keepdim=True) if k == 1 else s.topk(k, dim=1).indices
    return out


def _kmeans(x: Tensor, k: int, iters: int, max_mb: float) -> tuple[Tensor, Tensor]:
    """Spherical k-means of the rows of ``x``: unit centroids ``k x D`` and assignments ``n``.

    The ``iters`` rounds run on an even sample of about ``KMEANS_SAMPLE * k`` rows; one
    assignment of all rows follows.
    """
    n = x.shape[0]
    cent = x[torch.linspace(0, n - 1, k, device=x.device).round().long()].clone()
    sample = x[::max(1, n // (KMEANS_SAMPLE * k))]
    for _ in range(iters):
        assign = _assign(sample, F.normalize(cent, dim=1), 1, max_mb)[:, 0]
        sums = torch.zeros_like(cent).index_add_(0, assign, sample)
        used = torch.bincount(assign, minlength=k) > 0
        cent = torch.where(used[:, None], sums, cent)  # an empty cluster keeps its centroid
    cent = F.normalize(cent, dim=1)
    return cent, _assign(x, cent, 1, max_mb)[:, 0]


def _search(cd: Tensor, rd: Tensor, cfg: ApproxConfig, max_mb: float) -> Tensor:
    """``N_c x t`` candidate indices: each content position's best approximate candidates.

    Candidates are sorted by cluster and the searched (content position, probed cluster)
    pairs by cluster, so that each cluster is one GEMM of two contiguous slices.
    """
    nc, nr = cd.shape[0], rd.shape[0]
    k = max(1, min(nr, round(nr / cfg.cluster_size)))
    keep = min(cfg.rescore, nr)
    if k == 1:
        assign = torch.zeros(nr, dtype=torch.int64, device=rd.device)
        probe = torch.zeros(nc, 1, dtype=torch.int64, device=cd.device)
        slots = torch.arange(nc, device=cd.device)
    else:
        cent, assign = _kmeans(rd, k, cfg.iters, max_mb)
        probe, slots = _probe(cd, cent, min(cfg.probes, k), cfg.probe_margin, max_mb)
    probes = probe.shape[1]
    order = torch.argsort(assign, stable=True)
    members = rd.index_select(0, order)
    m_start = torch.zeros(k + 1, dtype=torch.int64, device=rd.device)
    m_start[1:] = torch.bincount(assign, minlength=k).cumsum(0)
    flat = probe.view(-1).index_select(0, slots)
    by_cluster = slots.index_select(0, torch.argsort(flat, stable=True))  # searched slots, by cluster
    cluster_of = probe.view(-1).index_select(0, by_cluster)
    content_of = by_cluster // probes
    q_end = torch.bincount(flat, minlength=k).cumsum(0).tolist()
    bounds = m_start.tolist()
    vals = torch.full((by_cluster.numel(), keep), -torch.inf, dtype=cd.dtype, device=cd.device)
    local = torch.zeros(by_cluster.numel(), keep, dtype=torch.int64, device=cd.device)
    q0 = 0
    for c in range(k):  # one GEMM + max per cluster (per block of its queries within max_mb)
        m0, m1, q1 = bounds[c], bounds[c + 1], q_end[c]
        if m1 > m0 and q1 > q0:
            step = _rows_per_block(m1 - m0, max_mb, cd.element_size())
            for a in range(q0, q1, step):
                b = min(q1, a + step)
                s = cd.index_select(0, content_of[a:b]) @ members[m0:m1].T
                _top(s, min(keep, m1 - m0), vals[a:b], local[a:b])
        q0 = q1
    idx = order[(m_start[cluster_of][:, None] + local).clamp_max(nr - 1)]  # -inf slots: any valid index
    out_vals = torch.full((nc * probes, keep), -torch.inf, dtype=cd.dtype, device=cd.device)
    out_idx = torch.zeros(nc * probes, keep, dtype=torch.int64, device=cd.device)
    out_vals[by_cluster], out_idx[by_cluster] = vals, idx
    out_vals, out_idx = out_vals.view(nc, probes * keep), out_idx.view(nc, probes * keep)
    if probes * keep > keep:
        best = torch.empty(nc, keep, dtype=torch.int64, device=cd.device)
        _top(out_vals, keep, torch.empty(nc, keep, dtype=cd.dtype, device=cd.device), best)
        out_idx = out_idx.gather(1, best)
    return out_idx


def _probe(cd: Tensor, cent: Tensor, probes: int, margin: float, max_mb: float) -> tuple[Tensor, Tensor]:
    """The ``probes`` best clusters of every content position (``N_c x probes``) and the flat
    slots (position * probes + rank) to search: those scoring within ``margin`` of the best."""
    nc = cd.shape[0]
    probe = torch.empty(nc, probes, dtype=torch.int64, device=cd.device)
    keep = torch.ones(nc, probes, dtype=torch.bool, device=cd.device)
    step = _rows_per_block(cent.shape[0], max_mb, cd.element_size())
    for i in range(0, nc, step):
        v, probe[i:i + step] = (cd[i:i + step] @ cent.T).topk(probes, dim=1)
        if margin > 0:
            torch.ge(v, v[:, :1] - margin * v[:, :1].abs(), out=keep[i:i + step])
    return probe, keep.view(-1).nonzero()[:, 0]


def _top(s: Tensor, k: int, values: Tensor, indices: Tensor) -> None:
    """The ``k`` largest entries of each row of ``s`` into ``values``/``indices`` (first ``k``
    columns). For small ``k``, repeated max passes: much faster than ``topk`` on the CPU.
    ``s`` is overwritten when ``k > 1``."""
    if k > 4:
        torch.topk(s, k, dim=1, out=(values[:, :k], indices[:, :k]))
        return
    for j in range(k):
        torch.max(s, dim=1, keepdim=True, out=(values[:, j:j + 1], indices[:, j:j + 1]))
        if j + 1 < k:
            s.scatter_(1, indices[:, j:j + 1], -torch.inf)


# ----------------------------------------------------------------------------- exact re-scoring


def _take(values: Tensor, index: Tensor) -> Tensor:
    """``values[index]`` for a 1-D ``values`` (``index_select``: faster than advanced indexing)."""
    return values.index_select(0, index.reshape(-1)).view(index.shape)


def _rescore(padded: Tensor, H: int, W: int, ref_rows: Tensor, top_left: Tensor, width: Tensor,
             inv_norm: Tensor, cand: Tensor, p: int, max_mb: float) -> tuple[Tensor, Tensor]:
    """Exact ``S*`` of candidates ``cand`` (``N_c x t``); best score and index per position.

    Content positions are walked in the padded width so that each patch row of all of them
    is one slice of a (row-overlapping) view of the padded map; each candidate's patch row
    is one gathered row of the same view of the reference rows. Ties go to the lowest index.
    """
    C, r = padded.shape[1], p // 2
    pw, t = W + 2 * r, cand.shape[1]
    cand = cand.sort(dim=1).values
    # ext layout: positions y * pw + x; the p - 1 columns past W get any candidate, then dropped
    cand_ext = torch.zeros(H, pw, t, dtype=cand.dtype, device=cand.device)
    cand_ext[:, :W] = cand.view(H, W, t)
    cand_ext = cand_ext.view(H * pw, t)
    n_ext = (H - 1) * pw + W
    rows_c = padded.as_strided((padded.shape[0] - p + 1, p * C), (C, 1))  # p pixels of a patch row
    rows_r = ref_rows.as_strided((ref_rows.shape[0] - p + 1, p * C), (C, 1))
    best = torch.empty(H * pw, dtype=padded.dtype, device=padded.device)
    arg = torch.zeros(H * pw, dtype=torch.int64, device=padded.device)
    # chunks small enough for the gathered rows to stay in cache (and inside max_mb)
    step = max(1, min(CHUNK, int(max_mb * 2**20) // ((2 * t + 2) * p * C * padded.element_size())))
    for i0 in range(0, n_ext, step):
        i1 = min(n_ext, i0 + step)
        cj = cand_ext[i0:i1]
        tl, wd = _take(top_left, cj), _take(width, cj)
        acc = torch.zeros(t, i1 - i0, dtype=padded.dtype, device=padded.device)
        for dy in range(p):
            c = rows_c[i0 + dy * pw:i1 + dy * pw]
            rows = tl + dy * wd
            for j in range(t):
                acc[j] += torch.linalg.vecdot(rows_r.index_select(0, rows[:, j]), c)
        acc = acc.T
        acc *= _take(inv_norm, cj)
        v, k = acc.max(dim=1)
        best[i0:i1], arg[i0:i1] = v, cj.gather(1, k[:, None])[:, 0]
    return best.view(H, pw)[:, :W], arg.view(H, pw)[:, :W]


# ----------------------------------------------------------------------------- entry point


@torch.no_grad()
def match_approximate(content: Tensor, refs: list[Tensor], patch: int = 3, max_mb: float = 256,
                      config: ApproxConfig | dict | None = None) -> Correspondence:
    """Approximate :func:`refsr.matching.exact.match_exact` (see the module docstring); exact scores of the result."""
    cfg = ApproxConfig.from_any(config)
    content = check_content(content)
    refs = check_refs(content, refs, patch)
    C, H, W = content.shape
    p, r = patch, patch // 2
    padded = padded_rows(content, r)
    ref_rows = [pixel_rows(ref) for ref in refs]
    shapes = [(int(ref.shape[1]), int(ref.shape[2])) for ref in refs]
    norms = torch.cat([patch_norms(rows, h, w, p).reshape(-1) for rows, (h, w) in zip(ref_rows, shapes,
                                                                                        strict=True)])
    inv_norm = 1.0 / norms.clamp_min(EPS)

    cd, rd = _descriptors(padded, H, W, ref_rows, shapes, p, cfg.dims, max_mb)
    rd.mul_(inv_norm[:, None])
    cand = _search(cd, rd, cfg, max_mb)
    del cd, rd

    # Flat candidate index -> row of its top-left pixel in the concatenated reference rows.
    dev = content.device
    top_left, width, start = [], [], 0
    for h, w in shapes:
        gh, gw = h - p + 1, w - p + 1
        g = torch.arange(gh * gw, device=dev)
        top_left.append(start + (g // gw) * w + g % gw)
        width.append(torch.full((gh * gw,), w, device=dev))
        start += h * w
    all_rows = ref_rows[0] if len(ref_rows) == 1 else torch.cat(ref_rows)
    best, arg = _rescore(padded, H, W, all_rows, torch.cat(top_left), torch.cat(width), inv_norm, cand, p, max_mb)
    return finish(content, padded, refs, best, arg, patch)


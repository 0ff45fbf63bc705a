"""What the levels and models of one test image share, computed once: a bounded memo keyed by content.

Per test group, LR↑'s features are the same at every level; each reference's features serve
its own level, ``ALL`` and (through the stitched image) nothing else; ``srntt_l2`` and
``srntt`` swap the same VGG19 maps. :class:`FeatureCache` remembers such results under keys
made from the *bytes* of their inputs (:func:`key_of`), never from names or object ids, so a
hit is the same computation by construction. It holds at most ``max_mb`` (least recently used
entries go first; an entry larger than the whole budget is computed and not kept), so a cache
changes the time, never the result or the memory bound of the streamed paths. ``max_mb=0``
keeps nothing.

:func:`combine` is what lets the ``ALL`` level reuse the per-reference searches: the exact
search over several references equals the per-reference results merged in reference order
with ties to the earlier one (the same blocks are scored by the same products, so the merged
result is bit-identical to the joint scan, see :func:`refsr.matching.exact.match_exact_bands`).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from refsr.matching.correspondence import Correspondence

T = TypeVar("T")


def key_of(x: Any) -> str:
    """A digest of an array's or tensor's dtype, shape and bytes (a str, tuple or number as is)."""
    if isinstance(x, (str, int, float, bool)) or x is None:
        return repr(x)
    if isinstance(x, (tuple, list)):
        return "(" + ",".join(key_of(v) for v in x) + ")"
    if isinstance(x, Tensor):
        x = x.detach()
        if x.dtype == torch.bfloat16:
            x = x.view(torch.int16)
        x = x.cpu().contiguous().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"cannot key a {type(x).__name__}")
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{x.dtype}{x.shape}".encode())
    h.update(memoryview(np.ascontiguousarray(x)).cast("B"))
    return h.hexdigest()


def _nbytes(v: Any) -> int:
    if isinstance(v, Tensor):  # a view keeps its whole storage alive
        return max(v.element_size() * v.numel(), v.untyped_storage().nbytes())
    if isinstance(v, np.ndarray):
        return int(v.nbytes)
    if isinstance(v, Correspondence):
        return sum(_nbytes(t) for t in (v.index, v.score, v.cosine) if t is not None)
    if isinstance(v, dict):
        return sum(_nbytes(x) for x in v.values())
    if isinstance(v, (list, tuple)):
        return sum(_nbytes(x) for x in v)
    return 64


class FeatureCache:
    """``cache.get(key, make)``: ``make()`` once per key while the entry fits in ``max_mb``."""

    def __init__(self, max_mb: float = 0):
        if not max_mb >= 0:
            raise ValueError(f"max_mb must be >= 0, got {max_mb!r}")
        self.budget = int(max_mb * 2**20)
        self._entries: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
        self.size = self.hits = self.misses = 0

    def get(self, key: tuple, make: Callable[[], T]) -> T:
        if key in self._entries:
            self._entries.move_to_end(key)
            self.hits += 1
            return self._entries[key][0]
        self.misses += 1
        value = make()
        n = _nbytes(value)
        if n <= self.budget:
            while self._entries and self.size + n > self.budget:
                _, (_, m) = self._entries.popitem(last=False)
                self.size -= m
            self._entries[key] = (value, n)
            self.size += n
        return value

    def clear(self) -> None:
        self._entries.clear()
        self.size = 0

    def __len__(self) -> int:
        return len(self._entries)


def combine(corrs: Sequence[Correspondence]) -> Correspondence:
    """The exact search over all references from each reference's own exact search (same
    content), numbered consecutively; where two references score equally the earlier wins."""
    if len(corrs) == 1:
        return corrs[0]
    first = corrs[0]
    best, index = first.score.clone(), first.index.clone()
    cosine = None if first.cosine is None else first.cosine.clone()
    offset = sum((h - first.patch + 1) * (w - first.patch + 1) for h, w in first.ref_shapes)
    shapes = list(first.ref_shapes)
    for c in corrs[1:]:
        if c.patch != first.patch or c.index.shape != first.index.shape:
            raise ValueError("combine: correspondences of different contents or patch sizes")
        better = c.score > best  # strict: the earlier reference keeps ties
        best = torch.where(better, c.score, best)
        index = torch.where(better, c.index + offset, index)
        if cosine is not None:
            cosine = torch.where(better, c.cosine, cosine) if c.cosine is not None else None
        offset += sum((h - c.patch + 1) * (w - c.patch + 1) for h, w in c.ref_shapes)
        shapes += list(c.ref_shapes)
    return Correspondence(index=index, score=best, ref_shapes=tuple(shapes), cosine=cosine, patch=first.patch)

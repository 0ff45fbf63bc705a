"""``match``: the one entry point of SRNTT's patch search, exact or approximate."""

from __future__ import annotations

import torch
from torch import Tensor

from refsr.core.errors import RefsrError
from refsr.matching.approximate import match_approximate
from refsr.matching.correspondence import Correspondence
from refsr.matching.exact import match_exact

MODES = ("exact", "approximate")


@torch.no_grad()
def match(content: Tensor, refs: list[Tensor], patch: int = 3, max_mb: float = 256,
          mode: str = "exact", approx=None) -> Correspondence:
    """SRNTT matching of every content position against all references' patches.

    ``content``: ``C x H x W`` (φ(LR↑) at relu3_1); ``refs``: list of ``C x Hr x Wr``
    (φ(Ref↓↑)), sizes free. ``mode="exact"``: :func:`refsr.matching.exact.match_exact`;
    ``mode="approximate"``: :func:`refsr.matching.approximate.match_approximate` with
    ``approx`` (an :class:`~refsr.matching.approximate.ApproxConfig` or a dict of its
    fields; ``None`` = the schema's defaults). No gradients flow (S* is a constant weight in
    SRNTT's texture loss).
    """
    if mode == "approximate":
        return match_approximate(content, refs, patch=patch, max_mb=max_mb, config=approx)
    if mode != "exact":
        raise RefsrError("matching mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
    return match_exact(content, refs, patch=patch, max_mb=max_mb)

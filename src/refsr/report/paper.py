"""Published CUFED5 numbers, each with its source, protocol and reference level.

Only numbers that can be cited are here: a paper table *as quoted in a public thread we can
link*, or an author's own statement in an issue thread. Each entry says

* ``source`` and ``url``: where the number is written down;
* ``protocol``: the refsr preset that reproduces the evaluation code that produced it
  (:data:`refsr.evaluation.protocol.PRESETS`), or ``None`` when the source does not state it;
* ``level``: the refsr evaluation level it corresponds to (``L1``: only the most similar
  reference; ``ALL_STITCHED``: the five references stitched into one, as TTSR's authors say
  both SRNTT and TTSR did for their main tables), or ``None`` when not stated;
* ``model``: the refsr model of the same method (``None``: not implemented here yet).

"ours - published" is computed only where the protocol and the level are the same as ours;
every other row says why not (:func:`comparable`). Numbers we could not cite were removed
(earlier versions carried SRNTT Table 1 values transcribed from memory; they are gone).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Test groups of CUFED5 (each: one HR image and references at five similarity levels).
CUFED5_GROUPS = 126

TTSR_ISSUE_3 = "https://github.com/researchmm/TTSR/issues/3"
TTSR_ISSUE_43 = "https://github.com/researchmm/TTSR/issues/43"
SRNTT_ISSUE_26 = "https://github.com/ZZUTK/SRNTT/issues/26"
MMAGIC_PR_327 = "https://github.com/open-mmlab/mmagic/pull/327"


@dataclass(frozen=True)
class Published:
    """One published CUFED5 (x4) result."""

    method: str  # the name its source gives it
    model: str | None  # the refsr model of that method, None when not implemented here
    psnr: float
    ssim: float  # NaN when the source gives none
    level: str | None  # refsr evaluation level, None = not stated
    protocol: str | None  # refsr protocol preset, None = not stated
    weights: str  # "released" (the authors' released checkpoint) | "paper" (the paper's table)
    source: str
    url: str


PUBLISHED: tuple[Published, ...] = (
    Published("TTSR-rec (TTSR-rec.pt)", "ttsr_rec", 26.991, 0.8003, "L1", "ttsr", "released",
              "TTSR authors, issue #3: eval.sh of the released model, L1 reference only", TTSR_ISSUE_3),
    Published("TTSR (TTSR.pt)", "ttsr", 25.402, 0.7600, "L1", "ttsr", "released",
              "TTSR authors, issue #3: eval.sh of the released model, L1 reference only", TTSR_ISSUE_3),
    Published("TTSR-rec, TTSR CVPR 2020 Table 1", "ttsr_rec", 27.09, math.nan, "ALL_STITCHED", "ttsr",
              "paper", "TTSR Table 1 as quoted in issue #43; all five references stitched "
              "(authors, issue #3: 'the same setup as SRNTT'); SSIM not quoted", TTSR_ISSUE_43),
    Published("SRNTT-\u21132, SRNTT CVPR 2019 Table 1", "srntt_l2", 26.24, math.nan, "ALL_STITCHED", None,
              "paper", "SRNTT Table 1 as quoted in SRNTT issue #26 (SSIM not quoted); all references "
              "per TTSR's authors (TTSR issue #3); the evaluation code (channel, crop) is not public",
              SRNTT_ISSUE_26),
    Published("TTSR-rec, mmagic ttsr-rec_x4_c64b16_g1_200k_CUFED", "ttsr_rec", 25.2433, 0.7491, None,
              "mmagic", "released", "mmagic's own model, PR #327 README: RGB, scale pixels cropped; "
              "reference set not stated", MMAGIC_PR_327),
)


def comparable(entry: Published, protocol: str, levels: Sequence[str],
               models: Sequence[str]) -> str | None:
    """None when ``entry`` can be compared with our run (same protocol preset, its level
    evaluated, its model run), else the reason it cannot, for the table."""
    if entry.model is None or entry.model not in models:
        return f"not run here ({entry.model or 'method'} not in this run's models)"
    if entry.protocol is None:
        return "the source does not state its evaluation protocol"
    if entry.protocol != protocol:
        return f"protocol differs (published: {entry.protocol}; this run: {protocol})"
    if entry.level is None:
        return "the source does not state its reference set"
    if entry.level not in levels:
        return f"level {entry.level} not evaluated in this run"
    return None


def provenance_note() -> str:
    """One sentence for the published-vs-ours caption."""
    return ("Published values carry their source (paper tables as quoted in public threads, or "
            "authors' statements in issue threads, with the URL), the refsr protocol preset that "
            "matches the code that produced them and the reference level; \u0394 = ours - published "
            "is shown only where protocol and level match, otherwise the row says why not.")

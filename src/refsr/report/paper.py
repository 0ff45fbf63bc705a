"""Published CUFED5 numbers of SRNTT (Zhang, Wang, Lin, Qi, CVPR 2019) for "paper vs reproduced".

Provenance, stated honestly: the values below were transcribed from memory of the
SRNTT paper's Table 1 (PSNR / SSIM on CUFED5, x4). They agree with the numbers
that later RefSR papers quote for SRNTT (e.g. TTSR, CVPR 2020, Table 1:
SRNTT-rec 26.24 / .784, SRNTT 25.61 / .764, SRGAN 24.40 / .702), but they could
not be checked against the paper's PDF where this module was written (no network).
Every entry therefore carries ``verified=False`` and the table caption says so; set
``verified=True`` only after checking a value against the paper itself.

``confidence`` separates values we are fairly sure of ("quoted") — repeated
verbatim by later papers — from ones recalled without such support ("recalled").

Not included:

* SRResNet: SRNTT's Table 1 has no SRResNet row that we could vouch for.
* The paper's per-reference-level study (CUFED5 at L1..L5 / LR / HR): its numbers
  could not be recalled reliably, so none are given rather than wrong ones. Add them
  to :data:`CUFED5_PER_LEVEL` (same record type, with ``level``) once checked.

The paper does not state every detail of its evaluation protocol (Y vs RGB, border
crop, bicubic implementation); differences of a few tenths of a dB can come from the
protocol alone.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Test groups of CUFED5 (each: one HR image and references at five similarity levels).
CUFED5_GROUPS = 126

SRNTT_PAPER = "Zhang, Wang, Lin, Qi: Image Super-Resolution by Neural Texture Transfer, CVPR 2019"


@dataclass(frozen=True)
class PaperValue:
    """One published (PSNR, SSIM) pair."""

    model: str  # this pipeline's model name
    paper_name: str  # the row name in the paper
    psnr: float
    ssim: float
    source: str  # "SRNTT CVPR 2019, Table N"
    verified: bool  # checked against the paper's PDF
    confidence: str  # "quoted" (repeated by later papers) | "recalled"
    level: str = "L1"  # reference level the value belongs to (Table 1: see CUFED5_MAIN_LEVEL)


#: The reference level of the paper's main CUFED5 comparison, as we read it: the most
#: similar reference (L1), as in the CUFED5 evaluation code of TTSR and C2-Matching,
#: whose tables repeat SRNTT's numbers. Not verified against the paper's text.
CUFED5_MAIN_LEVEL = "L1"

#: SRNTT paper Table 1, CUFED5 column (x4), PSNR (dB) / SSIM.
CUFED5_MAIN: dict[str, PaperValue] = {
    "bicubic": PaperValue("bicubic", "Bicubic", 24.18, 0.684, "SRNTT CVPR 2019, Table 1",
                          verified=False, confidence="recalled"),
    "srgan": PaperValue("srgan", "SRGAN", 24.40, 0.702, "SRNTT CVPR 2019, Table 1",
                        verified=False, confidence="quoted"),
    "srntt_l2": PaperValue("srntt_l2", "SRNTT-\u21132", 26.24, 0.784, "SRNTT CVPR 2019, Table 1",
                           verified=False, confidence="quoted"),
    "srntt": PaperValue("srntt", "SRNTT", 25.61, 0.764, "SRNTT CVPR 2019, Table 1",
                        verified=False, confidence="quoted"),
}

#: The paper's per-level study on CUFED5: deliberately empty (see the module docstring).
CUFED5_PER_LEVEL: dict[tuple[str, str], PaperValue] = {}


def published(model: str) -> PaperValue | None:
    """The published CUFED5 main-table value of ``model`` (None when the paper has none)."""
    return CUFED5_MAIN.get(model)


def provenance_note() -> str:
    """One sentence for the paper-vs-reproduced caption."""
    unverified = [v.paper_name for v in CUFED5_MAIN.values() if not v.verified]
    recalled = [v.paper_name for v in CUFED5_MAIN.values() if v.confidence == "recalled"]
    parts = [f"Published values: {SRNTT_PAPER}, Table 1 (CUFED5, x4, reference level "
             f"{CUFED5_MAIN_LEVEL} as we read it)."]
    if unverified:
        parts.append("UNVERIFIED: " + ", ".join(unverified) + " were transcribed without access "
                     "to the paper and not checked against it; check before citing.")
    if recalled:
        parts.append("Low confidence (not repeated by later papers): " + ", ".join(recalled) + ".")
    parts.append("The paper's exact protocol (Y/RGB, border crop, bicubic) is not fully stated; "
                 "a few tenths of a dB can come from the protocol alone.")
    return " ".join(parts)

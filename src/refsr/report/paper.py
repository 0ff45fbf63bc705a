"""Published CUFED5 numbers, each with its source, protocol, LR resize and reference level.

Only numbers that can be cited are here: a paper table *as quoted in a public thread we can
link*, or an author's own statement in an issue thread. Each entry says

* ``source`` and ``url``: where the number is written down;
* ``protocol``: the refsr preset that reproduces the evaluation code that produced it
  (:data:`refsr.evaluation.protocol.PRESETS`), or ``None`` when the source does not state it
  or when that code matches no preset (``unmatched`` then says why);
* ``resize``: how that code made the LR input (``"pil"`` or ``"matlab"`` bicubic, as
  :class:`refsr.evaluation.protocol.Protocol` ``resize``), ``None`` when not known;
* ``level``: the refsr evaluation level it corresponds to (``L1``: only the most similar
  reference; ``ALL_STITCHED``: the five references stitched into one, as TTSR's authors say
  both SRNTT and TTSR did for their main tables), or ``None`` when not stated or when the
  source's reference set is none of refsr's levels (``unmatched`` says why);
* ``model``: the refsr model of the same method (``None``: not implemented here yet).

"ours - published" is computed only where the protocol, the LR resize (where known) and the
level are the same as ours; every other row says why not (:func:`comparable`). Numbers we could
not cite were removed (earlier versions carried SRNTT Table 1 values transcribed from memory;
they are gone).

Evaluation protocols of the released code (read in the authors' repositories; links pinned to
the commit read):

* **TTSR** (`researchmm/TTSR`): ``dataset/cufed.py`` ``TestSet`` mod-crops HR to a multiple of 4
  and makes LR with PIL bicubic (``Image.resize(..., Image.BICUBIC)``) -> ``resize="pil"``.
* **C2-Matching** (`yumingj/C2-Matching` @ 6d60149), BasicSR/mmsr-based -> preset ``basicsr``,
  ``resize="pil"``, level ``L1``:

  - test configs ``options/test/test_C2_matching.yml`` and ``test_C2_matching_mse.yml`` L6:
    ``crop_border: ~``, which ``mmsr/utils/options.py`` L56-57 turns into the scale (4);
    L18 ``bicubic_model: PIL`` is documentation only (no Python file reads it);
  - ``datasets/CUFED5_pairs.txt`` (the ``ann_file`` of ``datasets/DATASETS.md``): 126 lines,
    each ``NNN_0.png NNN_1.png``: the level-1 reference only;
  - ``mmsr/data/ref_cufed_dataset.py`` L98-114: input and reference mod-cropped to 4, then,
    when their sizes differ, both zero-padded (``mmcv.impad``) to the larger height and
    width; L118-134: LR (and reference LR) by PIL bicubic of the padded images;
    the ground truth is the unpadded mod-cropped input (L101, L161-162);
  - ``mmsr/models/ref_restoration_model.py`` L309-315: output to uint8 (``tensor2img``) and
    cropped back to the input size (top-left); L341-351: PSNR/SSIM on Y of ``bgr2ycbcr(img / 255.)``,
    which for float input is not rounded (``mmsr/utils/metrics.py`` L146-168, MATLAB
    coefficients), ``crop_border`` pixels removed (L59-61, L136-138).
* **DATSR** (`caojiezhang/DATSR` @ 32240b5) inherits the same machinery -> ``basicsr``,
  ``resize="pil"``, ``L1``: ``options/test/test_restoration_mse.yml`` / ``_gan.yml`` L6
  ``crop_border: ~`` (``datsr/utils/options.py`` L56-57), ``ann_file:
  ./datasets/CUFED5_pairs.txt`` (126 ``NNN_1.png`` references); ``datsr/data/ref_cufed_dataset.py``
  L126-162 (mod-crop, zero-pad to the common size, PIL bicubic); ``datsr/models/
  ref_restoration_model.py`` L317-328 and L351-365 (uint8 output, Y unrounded, crop 4).
* **MASA-SR** (`dvlab-research/MASA-SR`, now `JIA-Lab-research/MASA-SR`, @ 80d1bd8) matches no
  preset: Y with MATLAB coefficients, unrounded, and **no border crop** (``basicsr`` with
  ``crop=0`` would be the closest; ``ttsr`` uses other Y coefficients):

  - ``test.sh`` L2 (the uncommented command): ``--testset TestSet_multi``;
  - ``dataloader/dataset.py`` L302-340 (``TestSet_multi``): the five references ``_1`` .. ``_5``
    each replicate-padded (centred) to 512x512 and stacked vertically into one 2560x512 image
    (refsr's ``ALL_STITCHED`` pastes each into a black 500x500 canvas instead); L342-367: HR
    replicate-padded (centred) to a multiple of 32, LR = PIL bicubic of the padded HR;
  - ``models/trainer.py`` L316-334: output cropped back to the HR size, uint8 (``tensor2img``
    rounds), channels put back in BGR order, Y of ``bgr2ycbcr`` on float input (unrounded,
    ``utils/calculate_PSNR_SSIM.py`` L93-114), PSNR/SSIM on the whole image (L38-46, L49-69);
  - the BGR reordering was added by commit 35cb0fa ("fix a bug", 2021-06-08); the README's
    update note of that day says the models were retrained and the released checkpoints' PSNR
    differ from the paper's by up to 0.03 dB. The single-reference ``TestSet`` (L83-152,
    ``--ref_level``) exists but is commented out in ``test.sh``.

Not here, because no citable text gives the number (only numbers found written in a source
are entered): C2-Matching / C2-Matching-rec (README has no results table; C2-Matching issue #14
shows the paper's table as an image only, the author saying the released checkpoints give
exactly the paper's CUFED5 numbers), DATSR / DATSR-rec (README has no results table; DATSR
issue #6 has only a user's own measurements of the released weights), and MASA (the GAN-trained
model; no thread quotes its CUFED5 number).
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
MASA_ISSUE_2 = "https://github.com/JIA-Lab-research/MASA-SR/issues/2"

#: LR resize values (:class:`refsr.evaluation.protocol.Protocol` ``resize``).
RESIZES = ("matlab", "pil")


@dataclass(frozen=True)
class Published:
    """One published CUFED5 (x4) result."""

    method: str  # the name its source gives it
    model: str | None  # the refsr model of that method, None when not implemented here
    psnr: float
    ssim: float  # NaN when the source gives none
    level: str | None  # refsr evaluation level, None = not stated (or none of refsr's)
    protocol: str | None  # refsr protocol preset, None = not stated (or none of refsr's)
    weights: str  # "released" (the authors' released checkpoint) | "paper" (the paper's table)
    source: str
    url: str
    resize: str | None = None  # how the source's code made LR: "pil" | "matlab"; None = not known
    unmatched: str = ""  # why the protocol or reference set is none of refsr's, when it is known


PUBLISHED: tuple[Published, ...] = (
    Published("TTSR-rec (TTSR-rec.pt)", "ttsr_rec", 26.991, 0.8003, "L1", "ttsr", "released",
              "TTSR authors, issue #3: eval.sh of the released model, L1 reference only; LR by "
              "PIL bicubic (TTSR dataset/cufed.py TestSet)", TTSR_ISSUE_3, resize="pil"),
    Published("TTSR (TTSR.pt)", "ttsr", 25.402, 0.7600, "L1", "ttsr", "released",
              "TTSR authors, issue #3: eval.sh of the released model, L1 reference only; LR by "
              "PIL bicubic (TTSR dataset/cufed.py TestSet)", TTSR_ISSUE_3, resize="pil"),
    Published("TTSR-rec, TTSR CVPR 2020 Table 1", "ttsr_rec", 27.09, math.nan, "ALL_STITCHED", "ttsr",
              "paper", "TTSR Table 1 as quoted in issue #43; all five references stitched "
              "(authors, issue #3: 'the same setup as SRNTT'); SSIM not quoted; LR by PIL bicubic "
              "in TTSR's released code (dataset/cufed.py)", TTSR_ISSUE_43, resize="pil"),
    Published("SRNTT-\u21132, SRNTT CVPR 2019 Table 1", "srntt_l2", 26.24, math.nan, "ALL_STITCHED", None,
              "paper", "SRNTT Table 1 as quoted in SRNTT issue #26 (SSIM not quoted); all references "
              "per TTSR's authors (TTSR issue #3); the evaluation code (channel, crop) is not public",
              SRNTT_ISSUE_26),
    Published("TTSR-rec, mmagic ttsr-rec_x4_c64b16_g1_200k_CUFED", "ttsr_rec", 25.2433, 0.7491, None,
              "mmagic", "released", "mmagic's own model, PR #327 README: RGB, scale pixels cropped; "
              "reference set not stated", MMAGIC_PR_327),
    Published("MASA-rec, MASA-SR CVPR 2021 (paper)", "masa_rec", 27.54, 0.814, None, None, "paper",
              "MASA-SR paper's CUFED5 number as quoted in MASA-SR issue #2 (also #8), where the "
              "authors say the references were stitched into one image as in TTSR; released test "
              "path (test.sh L2, dataloader/dataset.py TestSet_multi L302-367, models/trainer.py "
              "L316-334 @ 80d1bd8): five references each replicate-padded to 512x512 and stacked, "
              "LR by PIL bicubic of the replicate-padded HR, Y (MATLAB coefficients, unrounded) "
              "with no border crop", MASA_ISSUE_2, resize="pil",
              unmatched="MASA-SR's evaluation matches no refsr preset (Y unrounded, no border crop; its "
              "README notes an evaluation fix of 2021-06-08, commit 35cb0fa, after which the released "
              "checkpoints are within 0.03 dB of the paper) and its five references are stacked on "
              "512x512 replicate-padded tiles, not refsr's ALL_STITCHED"),
)


def comparable(entry: Published, protocol: str, levels: Sequence[str],
               models: Sequence[str], *, resize: str) -> str | None:
    """None when ``entry`` can be compared with our run (same protocol preset, same LR resize
    where the source's is known, its level evaluated, its model run), else the reason it cannot,
    for the table. ``resize`` is the run's (:class:`refsr.evaluation.protocol.Protocol`)."""
    if entry.model is None or entry.model not in models:
        return f"not run here ({entry.model or 'method'} not in this run's models)"
    if entry.protocol is None:
        return entry.unmatched or "the source does not state its evaluation protocol"
    if entry.protocol != protocol:
        return f"protocol differs (published: {entry.protocol}; this run: {protocol})"
    if entry.resize is not None and entry.resize != resize:
        return (f"LR resize differs (published: {entry.resize} bicubic; this run: {resize} "
                "bicubic)")
    if entry.level is None:
        return entry.unmatched or "the source does not state its reference set"
    if entry.level not in levels:
        return f"level {entry.level} not evaluated in this run"
    return None


def provenance_note() -> str:
    """One sentence for the published-vs-ours caption."""
    return ("Published values carry their source (paper tables as quoted in public threads, or "
            "authors' statements in issue threads, with the URL), the refsr protocol preset that "
            "matches the code that produced them, its LR resize and the reference level; \u0394 = "
            "ours - published is shown only where protocol, LR resize (where known) and level "
            "match, otherwise the row says why not.")

"""SRNTT patch matching and feature swapping, streamed and memory-bounded.

Conventions (all feature maps are ``C x H x W`` or ``1 x C x H x W``):

* **Candidates** are the valid ``p x p`` patches (stride 1, no padding) of each reference's
  relu3_1 map ``C x Hr x Wr``: a ``(Hr-p+1) x (Wr-p+1)`` *patch grid*. Grid cell
  ``(gy, gx)`` is the patch with top-left ``(gy, gx)``, i.e. centre ``(gy + p//2, gx + p//2)``.
  Patches of several references are numbered consecutively: reference 0's grid in
  row-major order, then reference 1's, ... (``Correspondence.offsets``).
* **Content** patches are taken around *every* content position: the content map is
  zero-padded by ``p//2`` first (what the official SRNTT code does with its ``'SAME'``
  convolution), so the correspondence has the content's full ``H x W`` size. Border
  patches thus contain zeros; they only lower the score, never the argmax's validity.
* ``score`` is SRNTT's ``S*``: ``<content_patch, cand_patch / |cand_patch|>``, maximised
  over all candidates (ties go to the lowest index). ``cosine`` is ``score / |content_patch|``
  (0 for an all-zero content patch), the mean of which the similarity tiers use.
* **Swapping** at relu3_1 / relu2_1 / relu1_1 (scale ``s`` = 1 / 2 / 4 relative to relu3_1)
  puts, for content position ``(y, x)``, the ``p*s x p*s`` patch of the *original*
  reference's map whose top-left is ``(gy*s, gx*s)`` at the output location whose top-left
  is ``((y - p//2)*s, (x - p//2)*s)``; parts falling outside the output are dropped, and
  every output pixel is the mean of the patches covering it (border pixels have fewer).

Speed and memory: the ``N_content x N_ref`` score matrix is never built, nor any patch
vector. :func:`~refsr.matching.exact.match_exact` multiplies *pixel* rows (C-deep, 1/p² of the patch-level FLOPs) in
blocks of about :data:`~refsr.matching.exact.BLOCK_SIDE` positions a side (:func:`band_rows`, shrunk to fit
``max_mb``) and sums p² shifted slices of each block into exact patch scores, keeping a
running max/argmax. :func:`~refsr.matching.stitch.swap` stitches with one ``F.embedding_bag`` per layer over the
channels-last reference map (no fold, no Python loop). Outside the budget are only tensors
of the inputs' or outputs' own size (the zero-padded content copy, a channels-last copy of
a reference that is not channels-last already, the ``H x W`` running state, the swapped
maps). ``mode="approximate"`` (:mod:`refsr.matching.approximate`) trades exactness for speed.

Modules: :mod:`.correspondence` (the result and its cache file), :mod:`.patches` (pixel
rows, norms, checks), :mod:`.exact` and :mod:`.approximate` (the two searches),
:mod:`.search` (``match``, choosing one), :mod:`.stitch` (``swap``), :mod:`.transfer`
(images in, maps out) and :mod:`.naive` (the textbook full-matrix reference that tests and
benchmarks compare against).
"""

from refsr.matching.approximate import ApproxConfig, match_approximate
from refsr.matching.correspondence import Correspondence, load_correspondence, save_correspondence
from refsr.matching.exact import band_bytes, band_rows, match_exact
from refsr.matching.patches import EPS
from refsr.matching.search import MODES, match
from refsr.matching.stitch import MATCH_LAYER, RELU3_STRIDE, SWAP_SCALES, swap, swap_batch
from refsr.matching.transfer import correspond, extract_features, ref_down_up, transfer

__all__ = [
    "EPS", "MATCH_LAYER", "MODES", "RELU3_STRIDE", "SWAP_SCALES", "ApproxConfig", "Correspondence",
    "band_bytes", "band_rows", "correspond", "extract_features", "load_correspondence", "match",
    "match_approximate", "match_exact", "ref_down_up", "save_correspondence", "swap", "swap_batch",
    "transfer",
]

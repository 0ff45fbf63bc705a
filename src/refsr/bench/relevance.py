"""TTSR's relevance search and texture transfer (:mod:`refsr.matching.relevance`) on a real
photo pair: seconds and peak memory here, against the bytes of the relevance matrix the
released code builds whole (:func:`refsr.matching.relevance.full_matrix_bytes`, computed, not
run: at 1000x1000 it is 14.6 GiB for one reference)."""

from __future__ import annotations

import time

import torch

from refsr.bench.measure import parse_size, rss_peak
from refsr.bench.swap import _photo_pair
from refsr.core.imageio import to_tensor
from refsr.data.resize import down_up, upscale
from refsr.matching import relevance
from refsr.models.ttsr import TTSR

#: References per image in CUFED5's ALL levels (TTSR issue #18 ran the released code with five).
REFS = (1, 5)


def _levels(net: TTSR, image) -> tuple:
    with torch.no_grad():
        return net.lte(to_tensor(image) * 2 - 1)


def bench_relevance(sizes: tuple[str, ...] = ("500x332", "1000x1000"), max_mb: float = 256,
                    vgg_weights: str | None = None) -> dict:
    """Search + transfer of one LR↑ against one same-size reference, per HR size."""
    net = TTSR().eval()
    net.LTE.load_imagenet(vgg_weights)
    rows = []
    for size in sizes:
        hr, ref, lr = _photo_pair(*parse_size(size))
        _, _, content = _levels(net, upscale(lr, 4))
        _, _, cand = _levels(net, down_up(ref, 4))
        lv1, lv2, lv3 = _levels(net, ref[: cand.shape[-2] * 4, : cand.shape[-1] * 4])
        ref_levels = [{"relu1_1": lv1[0], "relu2_1": lv2[0], "relu3_1": lv3[0]}]
        small = relevance.search(content[0][:, :6, :6], [cand[0][:, :6, :6]], max_mb)  # warm-up
        del small
        t0 = time.perf_counter()
        with rss_peak() as search_peak:
            corr = relevance.search(content[0], [cand[0]], max_mb)
        t1 = time.perf_counter()
        with rss_peak() as transfer_peak:
            relevance.transfer(corr, ref_levels, max_mb)
        t2 = time.perf_counter()
        h, w = hr.shape[:2]
        full = relevance.full_matrix_bytes(h, w, h, w)
        rows.append({"hr_size": size, "search_seconds": t1 - t0, "transfer_seconds": t2 - t1,
                     "search_peak_mb": search_peak["mb"], "transfer_peak_mb": transfer_peak["mb"],
                     "max_mb": max_mb, "mean_soft_attention": float(corr.cosine.mean()),
                     **{f"released_matrix_mb_{n}_refs": n * full / 2**20 for n in REFS}})
    return {"benchmark": "relevance", "threads": torch.get_num_threads(), "rows": rows}

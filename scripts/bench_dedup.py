"""Before/after of the exact search's deduplication (refsr.matching.exact.first_occurrences) on
a CUFED5-sized ALL_STITCHED search and one end-to-end SuperResolver image, in one run.

    REFSR_VGG19_WEIGHTS=... python scripts/bench_dedup.py [--scale 1.0] [--no-e2e] [--model srntt_l2]

Prints JSON lines: the search (seconds without / with dedup, the fraction of candidates
skipped, whether index and score are bit-identical) and, unless --no-e2e, the end-to-end image
(seconds without / with, whether the SR outputs are identical); the load average at start and end.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import refsr.matching.exact as exact
from refsr.bench.cufed5 import REF_SIZES, _window, paper_checkpoints
from refsr.core.imageio import to_tensor
from refsr.data.embedded import load_photo
from refsr.data.resize import degrade, down_up
from refsr.features.vgg import load_vgg19
from refsr.inference.levels import stitch_references
from refsr.inference.resolver import SuperResolver
from refsr.matching.patches import pixel_rows
from refsr.matching.transfer import extract_features

# the package re-exports functions named like these modules: take the modules themselves
search_mod = importlib.import_module("refsr.matching.search")
transfer_mod = importlib.import_module("refsr.matching.transfer")


def _images(scale: float):
    rng = np.random.RandomState(0)
    photos = [load_photo(n) for n in ("astronaut", "coffee", "chelsea", "rocket", "motorcycle")]
    s = lambda w, h: (max(16, int(w * scale)), max(16, int(h * scale)))  # noqa: E731
    hr = _window(photos[0], *s(500, 332), rng)
    refs = [_window(photos[k], *s(*REF_SIZES[k]), rng, zoom=1.0 + 0.25 * k) for k in range(5)]
    lr = down_up(hr, 4)  # stands in for LR↑'s content; the search only needs its size
    return hr, lr, refs


def _skipped(ref: torch.Tensor) -> tuple[float, float]:
    C, Hr, Wr = ref.shape
    rows = pixel_rows(ref)
    keep = exact.first_occurrences(rows, Hr, Wr, 3)
    segs = exact.row_segments(keep)
    searched = sum((g1 - g0) * w for g0, g1, w in segs)
    n = keep.numel()
    return 1 - searched / n, 1 - int(keep.sum()) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--no-e2e", action="store_true")
    ap.add_argument("--model", default="srntt_l2")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("REFSR_THREADS", "2")))
    load0 = os.getloadavg()
    hr, lr_up, refs = _images(args.scale)
    stitched = stitch_references(refs, side=max(16, int(500 * args.scale)))
    vgg = load_vgg19(("relu3_1",))
    content = extract_features(vgg, to_tensor(lr_up), ("relu3_1",))["relu3_1"][0]
    cand = extract_features(vgg, to_tensor(down_up(stitched, 4)), ("relu3_1",))["relu3_1"][0]
    exact.match_exact(content[:, :8, :8], [cand[:, :16]], dedup=True)  # warm-up
    secs: dict[bool, list[float]] = {False: [], True: []}
    res = {}
    for dedup in (False, True, False, True):  # interleaved: the load changes under the runs
        t = time.perf_counter()
        res[dedup] = exact.match_exact(content, [cand], dedup=dedup)
        secs[dedup].append(round(time.perf_counter() - t, 2))
    t = time.perf_counter()
    skipped, duplicates = _skipped(cand)
    t_dedup = time.perf_counter() - t
    print(json.dumps({"what": "search ALL_STITCHED", "content": list(content.shape), "candidates": list(cand.shape),
                      "before_s": secs[False], "after_s": secs[True], "dedup_s": round(t_dedup, 2),
                      "speedup": round(sum(secs[False]) / sum(secs[True]), 2),
                      "skipped_fraction": round(skipped, 4), "duplicate_fraction": round(duplicates, 4),
                      "index_equal": torch.equal(res[False].index, res[True].index),
                      "score_equal": torch.equal(res[False].score, res[True].score),
                      "load_start": load0}), flush=True)
    if args.no_e2e:
        return
    lr = degrade(hr)[1]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = paper_checkpoints(Path(tmp), (args.model,))[args.model]
        real_bands, real_match = transfer_mod.match_exact_bands, search_mod.match_exact
        out: dict[bool, np.ndarray] = {}
        secs = {False: [], True: []}
        for dedup in (True, False, True, False, True):  # the first is a warm-up, then interleaved
            transfer_mod.match_exact_bands = functools.partial(real_bands, dedup=dedup)
            search_mod.match_exact = functools.partial(real_match, dedup=dedup)
            sr = SuperResolver(str(ckpt), model=args.model)  # a fresh resolver: no cache shared
            t = time.perf_counter()
            y = sr(lr, [stitched])
            secs[dedup].append(round(time.perf_counter() - t, 2))
            if dedup in out:
                assert np.array_equal(out[dedup], y)
            out[dedup] = y
        transfer_mod.match_exact_bands, search_mod.match_exact = real_bands, real_match
        secs[True] = secs[True][1:]
    print(json.dumps({"what": f"{args.model} ALL_STITCHED image", "lr": list(lr.shape),
                      "stitched": list(stitched.shape), "before_s": secs[False], "after_s": secs[True],
                      "speedup": round(sum(secs[False]) / sum(secs[True]), 2),
                      "outputs_equal": bool(np.array_equal(out[False], out[True])),
                      "load_end": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main()

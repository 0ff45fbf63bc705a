"""Rule infer: one model on every test group and evaluation level of one dataset."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

from refsr.core.atomic import atomic_dir
from refsr.core.imageio import read_image, write_image
from refsr.core.progress import progress
from refsr.data import read_manifest
from refsr.data.layout import Dataset
from refsr.data.lr import lr_path
from refsr.inference.levels import eval_levels, level_images, level_references
from refsr.inference.resolver import SuperResolver
from refsr.matching.cache import FeatureCache
from refsr.similarity.tiers import read_tiers
from refsr.stages.runner import settings

log = logging.getLogger(__name__)

ALIGNMENT_JSON = "alignment.json"  # reference-alignment counts beside a reference model's SR images


#: Memory (MB) the levels and models of one test group may share in :func:`run_inference`: φ(LR↑),
#: each reference's search and features, SRNTT's swapped maps (:mod:`refsr.matching.cache`).
CACHE_MB = 3072


def run_inference(ds: Dataset, lr_dir: Path, tiers_csv: Path, resolver: SuperResolver | Sequence[SuperResolver],
                  out_dir: Path | Sequence[Path], levels: Sequence[str], cache_mb: float = CACHE_MB,
                  on_image: Callable[[str, str, str, float], None] | None = None) -> int:
    """Super-resolve every test group at each of ``levels`` it has into ``out_dir/{group}/{level}.png``.

    Every model writes the same cells: LR, HR, each of L1..L5 at which the group has a
    reference (its ``used`` one in the tiers table), and ALL / ALL_STITCHED when it has any. A level without a reference is
    structurally absent for that group: nothing is written, and the evaluation leaves it out
    (an output missing at a level the group has is a failure, marked by the tables).

    Several resolvers (with one ``out_dir`` each) run group by group in one pass and share one
    :class:`~refsr.matching.cache.FeatureCache` of ``cache_mb`` (cleared per group): what a
    level or a model has computed for the group's images is reused by the next (``srntt_l2``
    and ``srntt`` swap the same VGG19 maps); the outputs are those of separate runs.
    ``on_image(model, group, level, seconds)`` is told the time of every image (its SR and
    its write). Returns the number of images written.
    """
    resolvers = [resolver] if isinstance(resolver, SuperResolver) else list(resolver)
    out_dirs = [out_dir] if isinstance(out_dir, (str, Path)) else list(out_dir)
    if len(out_dirs) != len(resolvers):
        raise ValueError(f"{len(resolvers)} resolvers but {len(out_dirs)} output folders")
    cache = FeatureCache(cache_mb)
    for r in resolvers:
        r.cache = cache
    refs_by_level = level_references(ds, read_tiers(tiers_csv))
    names = ", ".join(r.name for r in resolvers)
    n = 0
    with ExitStack() as stack:
        tmps = [stack.enter_context(atomic_dir(d)) for d in out_dirs]
        for g in progress(ds.groups, f"{names} on {ds.name}", logger=log):
            cache.clear()
            lr = read_image(lr_path(lr_dir, "test", g.name))
            has = eval_levels(g, refs_by_level[g.name], levels)
            absent = [lv for lv in levels if lv not in has]
            if absent:
                log.info("%s: no reference at %s (structurally absent); not written", g.name,
                         ", ".join(absent))
            sisr: dict[int, object] = {}  # a model without references: one output for every level
            for level in has:
                refs = None
                for k, (res, tmp) in enumerate(zip(resolvers, tmps, strict=True)):
                    t0 = time.perf_counter()
                    if res.uses_reference:
                        if refs is None:
                            refs = level_images(g, level, lr, refs_by_level[g.name], res.scale, res.resize)
                        sr = res(lr, refs)
                    else:
                        sr = sisr[k] if k in sisr else sisr.setdefault(k, res(lr))
                    write_image(tmp / g.name / f"{level}.png", sr)
                    if on_image is not None:
                        on_image(res.name, g.name, level, time.perf_counter() - t0)
                    n += 1
        for res, tmp in zip(resolvers, tmps, strict=True):
            if res.uses_reference:
                stats = {"model": res.name, "align": res.aligner.mode, **res.align_stats.as_dict()}
                (tmp / ALIGNMENT_JSON).write_text(json.dumps(stats, indent=1) + "\n")
                log.info("%s alignment: %s", res.name, res.align_stats.summary())
    cache.clear()
    log.info("wrote %d SR images to %s (feature cache: %d hits, %d misses)", n,
             ", ".join(str(d) for d in out_dirs), cache.hits, cache.misses)
    return n


def make_resolver(smk) -> SuperResolver:
    """The job's SuperResolver: its params (an inference job spec), its checkpoints (the model's,
    and the SISR model's when it matches in the SR domain) and the memory budget setting."""
    return SuperResolver.from_config(smk.params.job, smk.input.get("checkpoint"), smk.input.get("sisr"),
                                     max_mb=settings(smk)["max_mb"])


def main(smk) -> None:
    ds = read_manifest(smk.input.manifest, smk.wildcards.dataset)
    run_inference(ds, smk.input.lr, smk.input.tiers, make_resolver(smk), smk.output[0], smk.params.job["levels"])

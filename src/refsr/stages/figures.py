"""Rule figures: metric vs level, visual comparison grid and correspondence picture of one dataset."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from refsr.core.config import defaults
from refsr.core.errors import RefsrError
from refsr.core.imageio import read_image, to_tensor
from refsr.data import read_manifest
from refsr.data.layout import Dataset
from refsr.data.lr import lr_path
from refsr.data.resize import down_up, upscale
from refsr.features.vgg import load_vgg19
from refsr.matching import MATCH_LAYER, RELU3_STRIDE, correspond
from refsr.models import registry
from refsr.report.figures import (
    MatchView,
    plot_comparison_grid,
    plot_correspondence,
    plot_metric_vs_level,
    references_at,
    showcase,
)
from refsr.report.provenance import lpips_provenance
from refsr.report.summary import load_evals, summarise
from refsr.similarity.tiers import read_tiers
from refsr.stages.runner import settings

log = logging.getLogger(__name__)


def match_view(lr_up, ref, vgg, max_mb: float, scale: int, resize: str) -> MatchView:
    """SRNTT's relu3_1 matching of ``lr_up`` against one reference, as figure arrays."""
    corr = correspond(to_tensor(lr_up), [to_tensor(ref)], vgg, max_mb=max_mb,
                      refs_down_up=[to_tensor(down_up(ref, scale, resize))])
    py, px = (t.cpu().numpy() for t in corr.pos)
    mean_cos = float(corr.cosine.mean()) if corr.cosine is not None else math.nan
    return MatchView(py=py, px=px, score=corr.score.cpu().numpy(), ref_grid=corr.ref_shapes[0],
                     stride=RELU3_STRIDE, mean_cosine=mean_cos)


def hard_attention_view(checkpoint: str | os.PathLike, lr, ref, resolver_cfg: Mapping,
                        max_mb: float) -> tuple[MatchView, object]:
    """TTSR's hard and soft attention of an LR image against one reference (its own texture
    extractor and search, as its inference runs them: ``resolver_cfg`` is its inference job
    spec), as figure arrays, and its SR output."""
    from refsr.inference.resolver import SuperResolver

    resolver = SuperResolver.from_config(resolver_cfg, str(checkpoint), max_mb=max_mb)
    sr = resolver(lr, [ref])
    corr = resolver.last_correspondence
    py, px = (t.cpu().numpy() - 1 for t in corr.pos)  # the search pads the reference by one cell
    (hp, wp), = corr.ref_shapes
    view = MatchView(py=py, px=px, score=corr.cosine.cpu().numpy(), ref_grid=(hp - 2, wp - 2),
                     stride=RELU3_STRIDE, mean_cosine=float(corr.cosine.mean()))
    return view, sr


def run_figures(ds: Dataset, eval_csvs: Sequence[str | os.PathLike], sr_dirs: Mapping[str, str | os.PathLike],
                lr_dir: str | os.PathLike, tiers_csv: str | os.PathLike, models: Sequence[str],
                config: Mapping, outputs: Mapping[str, str],
                learned: Sequence[tuple[str, str | os.PathLike]] = (), max_mb: float | None = None) -> None:
    """Metric vs level, comparison grid and correspondence figure of one dataset; ``sr_dirs``:
    model -> its SR folder; ``learned``: ``(model, checkpoint)`` of TTSR models whose hard
    attention the figure shows too (their resolvers: ``config["resolvers"][model]``); ``max_mb``:
    the matching's memory budget (a setting; unset: the schema's)."""
    max_mb = defaults("matching.max_mb") if max_mb is None else max_mb
    ev = config["evaluation"]
    evals, metas = load_evals(eval_csvs)
    summary = summarise(evals, ev["levels"])
    lp_text, lp_ok = lpips_provenance(metas.values())
    plot_metric_vs_level(summary[summary["dataset"] == ds.name], models, list(ev["levels_figure_metrics"]),
                         f"{ds.name}: mean over {summary['n_images'].max()} test images per level",
                         outputs["levels_png"], outputs.get("levels_pdf"), lp_ok, lp_text,
                         levels=ev["levels"])
    tiers = read_tiers(tiers_csv)
    by_model = {m: df for (d, m), df in evals.items() if d == ds.name}
    plot_comparison_grid(ds, sr_dirs, models, tiers, by_model, outputs["grid_png"],
                         outputs.get("grid_pdf"), images=ev["grid_images"] or None,
                         levels=ev["grid_levels"], crop=int(ev["grid_crop"]),
                         n_images=int(ev["grid_n_images"]))
    _, refsr = showcase(models)
    level = "L1"
    image = ev["correspondence_image"] or next(
        (g.name for g in ds.groups if references_at(tiers, ds, g.name, level)), None)
    scale, resize = int(config["scale"]), str(config["resize"])
    if image is None and not any(g.refs for g in ds.groups):
        # a set without references (urban100, manga109) is evaluated with the LR as its own
        # reference (level LR): the figure shows that matching, on the first image
        image, level = ds.groups[0].name, "LR"
        lr = read_image(lr_path(lr_dir, "test", image))
        lr_up = upscale(lr, scale, resize)
        ref = lr_up
    else:
        image = image or ds.groups[0].name
        refs = references_at(tiers, ds, image, level)
        if not refs:
            raise RefsrError(f"image {image}", f"has no reference at level {level} in the tiers table")
        lr = read_image(lr_path(lr_dir, "test", image))
        lr_up = upscale(lr, scale, resize)
        ref = read_image(refs[0])
    vgg = load_vgg19((MATCH_LAYER,), weights=config["vgg19_weights"])
    view = match_view(lr_up, ref, vgg, float(max_mb), scale, resize)
    shown, shown_label = lr_up, f"LR \u00d7{scale} bicubic (input)"
    sr_path = Path(sr_dirs[refsr]) / image / f"{level}.png" if refsr else None
    if sr_path is not None and sr_path.is_file():
        shown, shown_label = read_image(sr_path), f"SRNTT output ({level})"
    rows = [(shown, shown_label, view, "SRNTT (VGG19 relu3_1)")]
    for name, ckpt in learned:
        ttsr_view, ttsr_sr = hard_attention_view(ckpt, lr, ref, config["resolvers"][name], max_mb)
        rows.append((ttsr_sr, f"{registry.get(name).label} output ({level})", ttsr_view,
                     f"{registry.get(name).label} hard attention (LTE level 3)"))
    title = (f"{ds.name}/{image}: correspondence (3x3 patches at relu3_1 resolution) with its "
             f"{level} reference; VGG19 weights: {Path(str(vgg.weights_source)).name}")
    plot_correspondence(rows, ref, level, title, outputs["corr_png"], outputs.get("corr_pdf"))
    log.info("wrote the figures of %s", ds.name)


def main(smk) -> None:
    job = smk.params.job
    ds = read_manifest(smk.input.manifest, smk.wildcards.dataset)
    learned = list(zip(job["learned"], smk.input.learned, strict=True))
    sr_dirs = dict(zip(job["models"], smk.input.sr, strict=True))
    run_figures(ds, list(smk.input.csv), sr_dirs, smk.input.lr, smk.input.tiers, job["models"], job,
                dict(smk.output.items()), learned=learned, max_mb=settings(smk)["max_mb"])

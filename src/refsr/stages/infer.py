"""Rule infer: one model on every test group and evaluation level of one dataset."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from refsr.core.atomic import atomic_dir
from refsr.core.imageio import read_image, write_image
from refsr.core.progress import progress
from refsr.data import read_manifest
from refsr.data.layout import Dataset
from refsr.data.lr import lr_path
from refsr.inference.levels import level_images, level_references, read_tiers
from refsr.inference.resolver import SuperResolver

log = logging.getLogger(__name__)


def run_inference(ds: Dataset, lr_dir: Path, tiers_csv: Path, resolver: SuperResolver,
                  out_dir: Path, levels: Sequence[str]) -> int:
    """Super-resolve every test group at each of ``levels`` into ``out_dir/{group}/{level}.png``.

    A level with no reference for a group (possible for folder datasets) is skipped; the
    evaluation marks it missing. Returns the number of images written.
    """
    refs_by_level = level_references(ds, read_tiers(tiers_csv))
    n = 0
    with atomic_dir(out_dir) as tmp:
        for g in progress(ds.groups, f"{resolver.name} on {ds.name}", logger=log):
            lr = read_image(lr_path(lr_dir, "test", g.name))
            if not resolver.uses_reference:
                sr = resolver(lr)
                for level in levels:
                    write_image(tmp / g.name / f"{level}.png", sr)
                    n += 1
                continue
            for level in levels:
                refs = level_images(g, level, lr, refs_by_level[g.name], resolver.scale, resolver.resize)
                if not refs:
                    log.warning("%s: no reference at level %s; skipped", g.name, level)
                    continue
                write_image(tmp / g.name / f"{level}.png", resolver(lr, refs))
                n += 1
    log.info("wrote %d SR images to %s", n, out_dir)
    return n


def main(smk) -> None:
    cfg = smk.params.config
    ds = read_manifest(smk.input.manifest, smk.wildcards.dataset)
    resolver = SuperResolver(smk.input.get("checkpoint"), model=smk.wildcards.model,
                             vgg_weights=cfg["vgg19_weights"], device=cfg["device"],
                             max_mb=smk.config["matching"]["max_mb"], tile=cfg["inference"]["tile"],
                             pad=cfg["inference"]["pad"], scale=cfg["scale"], resize=cfg["resize"],
                             match_mode=cfg["matching"]["mode"], approx=cfg["matching"]["approximate"],
                             vgg_mat=cfg["vgg19_mat"])
    run_inference(ds, smk.input.lr, smk.input.tiers, resolver, smk.output[0], cfg["levels"])

"""Rule correspondence: relu3_1 indices (int32) + S* (fp16) of every training pair."""

from __future__ import annotations

from refsr.data import read_manifest
from refsr.features.vgg import load_vgg19
from refsr.matching import MATCH_LAYER
from refsr.training.data import build_correspondence_cache


def main(smk) -> None:
    ds = read_manifest(smk.input.manifest, smk.wildcards.dataset)
    vgg = load_vgg19((MATCH_LAYER,), weights=smk.params.vgg19_weights)
    # The memory budget is read from the config, not a param: the exact matching's result
    # does not depend on it, so changing it must not redo the cache (and every training).
    build_correspondence_cache(ds, smk.input.lr, smk.output[0], vgg, smk.params.scale,
                               smk.params.resize, smk.config["matching"]["max_mb"])

"""Rule correspondence: relu3_1 indices (int32), S* and cosine (fp16) of every training pair.

The VGG19 is the recipe's (``params.recipe`` of the models that train from the cache): torchvision's
for recipe refsr, the official recipe's for official (:func:`refsr.features.matconvnet.load_official_vgg19`),
whose ``official.training_maps`` also chooses what is matched (bicubic; the released script's
untrained upscaling network, :func:`refsr.training.data.released_upscaler`; or the trained SISR
model, :func:`refsr.training.data.sisr_upscaler`).
"""

from __future__ import annotations

import logging

from refsr.data import read_manifest
from refsr.features.matconvnet import load_official_vgg19
from refsr.features.vgg import load_vgg19
from refsr.matching import MATCH_LAYER
from refsr.stages.runner import settings
from refsr.training.data import build_correspondence_cache, released_upscaler, sisr_upscaler

log = logging.getLogger(__name__)


def main(smk) -> None:
    ds = read_manifest(smk.input.manifest, smk.wildcards.dataset)
    p = smk.params.job
    upscaler = None
    if p["recipe"] == "official":
        vgg = load_official_vgg19((MATCH_LAYER,), mat=p["official"]["vgg19_mat"], weights=p["vgg19_weights"])
        if p["official"]["training_maps"] == "released":
            upscaler = released_upscaler(p["arch"]["n_blocks"], p["arch"]["n_feats"], p["seed"])
            log.info("matching the outputs of an untrained official SRResNet, as the released script does")
        elif p["official"]["training_maps"] == "sisr":
            upscaler = sisr_upscaler(smk.input.sisr)
            log.info("matching the outputs of the trained SISR model %s", smk.input.sisr)
    else:
        vgg = load_vgg19((MATCH_LAYER,), weights=p["vgg19_weights"])
    log.info("VGG19: %s", vgg.weights_source)
    # The memory budget is a setting, not a param: the exact matching's result does not depend
    # on it, so changing it must not redo the cache (and every training).
    build_correspondence_cache(ds, smk.input.lr, smk.output[0], vgg, p["scale"], p["resize"],
                               settings(smk)["max_mb"], upscaler=upscaler)

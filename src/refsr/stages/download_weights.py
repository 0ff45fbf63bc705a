"""Rule download_weights: the ImageNet weights this config needs, into the torch hub cache."""

from __future__ import annotations

import logging

from refsr.features.weights import WEIGHTS, download

log = logging.getLogger("refsr")


def main(smk) -> None:
    names = smk.params.job["names"]
    if not names:
        log.info("the config names local files for every weight; nothing to download")
    for name, path in download(names).items():
        log.info("%s: %s (%s)", name, path, WEIGHTS[name][1])

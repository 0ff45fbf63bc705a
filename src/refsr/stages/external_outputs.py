"""Rule external_outputs: an external method's SR images (config ``external``) checked and copied
into the pipeline's layout, where the rule evaluate scores them like any model's."""

from __future__ import annotations

import logging

from refsr.data import read_manifest
from refsr.evaluation.external import ExternalOutputs, collect
from refsr.similarity.tiers import read_tiers

log = logging.getLogger(__name__)


def main(smk) -> None:
    job = smk.params.job
    ds = read_manifest(smk.input.manifest, smk.wildcards.dataset)
    ext = ExternalOutputs.from_config(smk.wildcards.external, job["external"])
    n = collect(ext, ds, read_tiers(smk.input.tiers), job["levels"], job["scale"], smk.output[0])
    log.info("%s: %d SR images of %s (%s) checked and copied", ds.name, n, ext.row_label,
             ext.folder(ds.name))

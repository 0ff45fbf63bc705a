"""Rule tiers: similarity scores per (image, reference), level agreement table and figure."""

from refsr.datasets import read_manifest
from refsr.scripting import run
from refsr.tiers import run_tiers


def main(smk):
    ds = read_manifest(smk.input.manifest, smk.wildcards.dataset)
    run_tiers(ds, smk.input.lr, dict(smk.output.items()), smk.params.tiers, smk.params.scale,
              smk.params.resize, smk.params.vgg19_weights)


run(main, snakemake)  # noqa: F821

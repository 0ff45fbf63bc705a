"""Rule degrade: LR (bicubic x1/scale) of every test HR and training input."""

from refsr.datasets import read_manifest
from refsr.datasets.lr import write_lr
from refsr.scripting import run


def main(smk):
    ds = read_manifest(smk.input.manifest, smk.wildcards.dataset)
    write_lr(ds, smk.output[0], smk.params.scale, smk.params.resize)


run(main, snakemake)  # noqa: F821

"""Rule figures: metric vs level, visual comparison grid and correspondence picture of one dataset."""

from refsr.datasets import read_manifest
from refsr.report.figures import run_figures
from refsr.scripting import run


def main(smk):
    ds = read_manifest(smk.input.manifest, smk.wildcards.dataset)
    run_figures(ds, list(smk.input.csv), smk.params.sr_root, smk.input.lr, smk.input.tiers,
                smk.params.models, smk.params.config, dict(smk.output.items()))


run(main, snakemake)  # noqa: F821

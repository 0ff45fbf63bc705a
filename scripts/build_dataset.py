"""Rule build_dataset: write results/data/{dataset}/ (images + manifest), all or nothing."""

from pathlib import Path

from refsr.datasets import build_to
from refsr.scripting import run


def main(smk):
    root = Path(smk.output.manifest).parent
    build_to(smk.wildcards.dataset, smk.params.cfg, root, smk.params.scale)


run(main, snakemake)  # noqa: F821

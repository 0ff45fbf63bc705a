"""Rule build_dataset: write results/data/{dataset}/ (images + manifest), all or nothing."""

from refsr.stages.build_dataset import main
from refsr.stages.runner import run

run(main, snakemake)  # noqa: F821

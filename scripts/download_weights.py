"""Rule download_weights: the ImageNet weights this config needs, into the torch hub cache."""

from refsr.stages.download_weights import main
from refsr.stages.runner import run

run(main, snakemake)  # noqa: F821

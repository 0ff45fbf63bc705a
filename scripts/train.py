"""Rule train (every trainable model of the registry): refsr.stages.train."""

from refsr.stages.runner import run
from refsr.stages.train import main

run(main, snakemake)  # noqa: F821

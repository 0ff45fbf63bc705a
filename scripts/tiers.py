"""Rule tiers: similarity scores per (image, reference), level agreement table and figure."""

from refsr.stages.runner import run
from refsr.stages.tiers import main

run(main, snakemake)  # noqa: F821

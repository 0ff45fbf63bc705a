"""Rule import_weights: released weights of one model, converted into a refsr checkpoint."""

from refsr.stages.import_weights import main
from refsr.stages.runner import run

run(main, snakemake)  # noqa: F821

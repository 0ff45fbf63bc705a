"""Rule degrade: LR (bicubic x1/scale) of every test HR and training input."""

from refsr.stages.degrade import main
from refsr.stages.runner import run

run(main, snakemake)  # noqa: F821

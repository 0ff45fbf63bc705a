"""Rule infer: one model on every test group and level of one dataset."""

from refsr.stages.infer import main
from refsr.stages.runner import run

run(main, snakemake)  # noqa: F821

"""Rule ablation: see refsr.stages.ablation."""

from refsr.stages.ablation import table_main
from refsr.stages.runner import run

run(table_main, snakemake)  # noqa: F821

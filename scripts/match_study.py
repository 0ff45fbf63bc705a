"""Rule match_study: see refsr.stages.ablation."""

from refsr.stages.ablation import match_study_main
from refsr.stages.runner import run

run(match_study_main, snakemake)  # noqa: F821

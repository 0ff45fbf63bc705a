"""Rule ablation_variant: see refsr.stages.ablation."""

from refsr.stages.ablation import variant_main
from refsr.stages.runner import run

run(variant_main, snakemake)  # noqa: F821

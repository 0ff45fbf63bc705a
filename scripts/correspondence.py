"""Rule correspondence: relu3_1 indices (int32) + S* (fp16) of every training pair."""

from refsr.stages.correspondence import main
from refsr.stages.runner import run

run(main, snakemake)  # noqa: F821

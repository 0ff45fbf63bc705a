"""Rule external_outputs: an external method's SR images, checked and put in the pipeline's layout."""

from refsr.stages.external_outputs import main
from refsr.stages.runner import run

run(main, snakemake)  # noqa: F821

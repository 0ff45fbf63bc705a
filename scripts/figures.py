"""Rule figures: metric vs level, visual comparison grid and correspondence picture of one dataset."""

from refsr.stages.figures import main
from refsr.stages.runner import run

run(main, snakemake)  # noqa: F821

"""Rule evaluate_presets: a method's SR images at L1 and ALL_STITCHED under every protocol preset."""

from refsr.stages.evaluate_presets import main
from refsr.stages.runner import run

run(main, snakemake)  # noqa: F821

"""Rule evaluate: PSNR / SSIM / LPIPS of one model on every test image and level of a dataset."""

from refsr.stages.evaluate import main
from refsr.stages.runner import run

run(main, snakemake)  # noqa: F821

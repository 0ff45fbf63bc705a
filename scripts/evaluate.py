"""Rule evaluate: PSNR / SSIM / LPIPS of one model on every test image and level of a dataset."""

from refsr.datasets import read_manifest
from refsr.evaluate import run_evaluation
from refsr.scripting import run


def main(smk):
    ds = read_manifest(smk.input.manifest, smk.wildcards.dataset)
    run_evaluation(ds, smk.input.sr, smk.wildcards.model, smk.params.config,
                   smk.output.csv, smk.output.json)


run(main, snakemake)  # noqa: F821

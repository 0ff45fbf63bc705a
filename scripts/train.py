"""Rule train_{model}: resumable training; writes the final checkpoint and the log CSV."""

from refsr.scripting import run
from refsr.train import run_training


def main(smk):
    run_training(smk.params.model, smk.params.config, smk.input.manifest, smk.input.lr,
                 smk.input.get("corr"), smk.input.get("init"), smk.params.state,
                 smk.output.checkpoint, smk.output.log_csv)


run(main, snakemake)  # noqa: F821

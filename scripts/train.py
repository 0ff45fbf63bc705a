"""Rule train_{model}: resumable training; writes the final checkpoint and the log CSV."""

from refsr.scripting import run
from refsr.train import run_training
from refsr.train_config import TrainConfig


def main(smk):
    run_training(TrainConfig(**smk.params.train), smk.input.manifest, smk.input.lr,
                 smk.input.get("corr"), smk.input.get("init"), smk.params.state,
                 smk.output.checkpoint, smk.output.log_csv, scale=smk.params.scale,
                 vgg_weights=smk.params.vgg19_weights)


run(main, snakemake)  # noqa: F821

"""Rule train (one per registered trainable model): resumable training; writes the final
checkpoint and the log CSV. Given more than one GPU (``resources: gpu=N``), training runs
data-parallel under torchrun (:mod:`refsr.training.distributed`)."""

from __future__ import annotations

from refsr.training.config import TrainConfig, untracked
from refsr.training.distributed import launch
from refsr.training.trainer import train_model


def main(smk) -> None:
    cfg = TrainConfig(**smk.params.train, **untracked(smk.config))
    args = dict(manifest=smk.input.manifest, lr_dir=smk.input.lr, corr_dir=smk.input.get("corr"),
                init_ckpt=smk.input.get("init"), state_path=smk.params.state,
                checkpoint=smk.output.checkpoint, log_csv=smk.output.log_csv,
                scale=smk.params.scale, vgg_weights=smk.params.vgg19_weights)
    gpus = int(smk.resources.get("gpu") or 0)
    if gpus > 1:
        launch(gpus, cfg, threads=smk.threads, **args)
    else:
        train_model(cfg, **args)

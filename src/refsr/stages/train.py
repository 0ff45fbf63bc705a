"""Rule train (one per registered trainable model): resumable training; writes the final
checkpoint and the log CSV. Given more than one GPU (``resources: gpu=N``), training runs
data-parallel under torchrun (:mod:`refsr.training.distributed`)."""

from __future__ import annotations

from refsr.stages.runner import settings
from refsr.training.config import SETTINGS, TrainConfig
from refsr.training.distributed import launch
from refsr.training.trainer import train_model


def main(smk) -> None:
    job, given = smk.params.job, settings(smk)
    cfg = TrainConfig(**job["train"], **{k: given[k] for k in SETTINGS})
    args = dict(manifest=smk.input.manifest, lr_dir=smk.input.lr, corr_dir=smk.input.get("corr"),
                init_ckpt=smk.input.get("init"), state_path=smk.params.state,
                checkpoint=smk.output.checkpoint, log_csv=smk.output.log_csv,
                scale=job["scale"], vgg_weights=job["vgg19_weights"])
    gpus = int(smk.resources.get("gpu") or 0)
    if gpus > 1:
        launch(gpus, cfg, threads=smk.threads, **args)
    else:
        train_model(cfg, **args)

"""Rule degrade: the LR (bicubic x1/scale, or the realistic pipeline) of every test HR and training input."""

from __future__ import annotations

from refsr.data import read_manifest
from refsr.data.lr import write_lr


def main(smk) -> None:
    ds = read_manifest(smk.input.manifest, smk.wildcards.dataset)
    job = smk.params.job
    write_lr(ds, smk.output[0], job["scale"], job["resize"], job["degradation"])

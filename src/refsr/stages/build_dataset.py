"""Rule build_dataset: ``results/data/{dataset}/`` (images + manifest), all or nothing."""

from __future__ import annotations

from pathlib import Path

from refsr.data import build_to


def main(smk) -> None:
    root = Path(smk.output.manifest).parent
    build_to(smk.wildcards.dataset, smk.params.job["dataset"], root, smk.params.job["scale"])

# Helpers shared by the rules: config validation, target lists, resources.

import sys

from snakemake.utils import validate

from refsr.config import check_config, check_references
from refsr.errors import RefsrError

SCHEMA = workflow.source_path("../schemas/config.schema.yaml")

try:
    check_config(config, SCHEMA)
    validate(config, schema="../schemas/config.schema.yaml")  # fills in the defaults
    check_references(config)
except RefsrError as err:
    sys.exit(f"refsr: invalid configuration: {err}")


DATASETS = sorted(set(config["eval_datasets"]) | {config["train_dataset"]})


wildcard_constraints:
    dataset="|".join(DATASETS),


def dataset_cfg(wildcards):
    return config["datasets"][wildcards.dataset]


def data_targets():
    """What the data stage produces for every dataset in use."""
    out = []
    for ds in DATASETS:
        out += [
            f"results/data/{ds}/manifest.csv",
            f"results/data/{ds}/lr",
            f"results/tiers/{ds}.csv",
            f"results/tiers/{ds}_agreement.md",
            f"results/figures/tiers_{ds}.png",
        ]
    return out

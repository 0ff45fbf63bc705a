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


TRAIN_DS = config["train_dataset"]
PARENT = {"srgan": "srresnet", "srntt_l2": "srresnet", "srntt": "srntt_l2"}
TRAINED = ["srresnet", "srgan", "srntt_l2", "srntt"]
REFSR_MODELS = ["srntt_l2", "srntt"]


def _with_parents(models):
    out = set(models)
    for m in models:
        while m in PARENT:
            m = PARENT[m]
            out.add(m)
    return out


MODELS = list(config["models"])
TRAIN_MODELS = [m for m in TRAINED if m in _with_parents(MODELS)]
USE_GPU = 1 if config["device"] == "cuda" else 0


wildcard_constraints:
    model="|".join(["bicubic", *TRAINED]),


def checkpoint_of(model):
    return f"results/models/{model}/checkpoint.pt"


def train_inputs(model):
    """Inputs of train_{model}: the training data, its correspondences, the parent checkpoint."""
    inputs = {
        "manifest": f"results/data/{TRAIN_DS}/manifest.csv",
        "lr": f"results/data/{TRAIN_DS}/lr",
    }
    if model in REFSR_MODELS:
        inputs["corr"] = f"results/correspondence/{TRAIN_DS}"
    if model in PARENT:
        inputs["init"] = checkpoint_of(PARENT[model])
    return inputs


def infer_inputs(wildcards):
    inputs = {
        "manifest": f"results/data/{wildcards.dataset}/manifest.csv",
        "lr": f"results/data/{wildcards.dataset}/lr",
        "tiers": f"results/tiers/{wildcards.dataset}.csv",
    }
    if wildcards.model != "bicubic":
        inputs["checkpoint"] = checkpoint_of(wildcards.model)
    return inputs


def model_targets():
    out = [checkpoint_of(m) for m in TRAIN_MODELS]
    out += [f"results/sr/{ds}/{m}" for ds in config["eval_datasets"] for m in MODELS]
    return out

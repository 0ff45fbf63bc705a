# Helpers shared by the rules: config validation, target lists, inputs, resources.
# Which models exist, what each trains from and what it needs come from the model registry
# (src/refsr/models/registry.py); the config's keys and defaults from the schema.

import os
import sys
from pathlib import Path

from refsr.core import config as refsr_config
from refsr.core.config import canonical
from refsr.core.errors import RefsrError
from refsr.data.checks import check_datasets
from refsr.evaluation import variants
from refsr.evaluation.protocol import protocol_from_config
from refsr.models import importers, registry
from refsr.training.config import train_params

# Rule scripts import refsr from this checkout, whichever Python runs them: this one, or a
# conda environment from envs/ (third-party packages only). Jobs inherit the variable,
# locally and on a cluster (SLURM jobs are submitted with --export=ALL).
os.environ["PYTHONPATH"] = os.pathsep.join(
    dict.fromkeys(
        [
            str(Path(workflow.basedir).parent / "src"),
            *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)),
        ]
    )
)


envvars:
    "PYTHONPATH",


# Validated once, defaults from workflow/schemas/config.schema.yaml: every rule below sees
# the complete config. The datasets in use get the checks that open no image (folders exist,
# photo lists known and disjoint), with the message the build_dataset job would give.
try:
    _validated = refsr_config.validate(config)
    registry.check_config(_validated)
    importers.check_config(_validated)
    check_datasets(_validated)  # the build_dataset job's cheap checks, at DAG build
except RefsrError as err:
    sys.exit(f"refsr: invalid configuration: {err}")
config.clear()
config.update(_validated)


DATASETS = sorted(set(config["eval_datasets"]) | {config["train_dataset"]})


wildcard_constraints:
    dataset="|".join(DATASETS),
    model="|".join(registry.names()),


# Params are canonical (keys sorted, recursively): Snakemake compares a rule's params by their
# representation, so a config re-saved with its keys in another order must re-run nothing.


def dataset_cfg(wildcards):
    return canonical(config["datasets"][wildcards.dataset])


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
MODELS = list(config["models"])
# Models with given weights (config "pretrained") are imported, not trained; the models to
# train are those listed and every model they start from (registry order).
PRETRAINED = dict(config["pretrained"])
TRAIN_MODELS = [
    m
    for m in registry.with_ancestors(MODELS, given=PRETRAINED)
    if registry.get(m).trainable and m not in PRETRAINED
]
# Models with their own texture extractor and search (TTSR): the correspondence figure shows
# their hard attention beside SRNTT's matching.
LEARNED_TEXTURE_MODELS = [
    m
    for m in MODELS
    if registry.get(m).uses_reference and registry.get(m).textures == "learned"
]
USE_GPU = 1 if config["device"] == "cuda" else 0
# Conda environment (--sdm conda) of the rules that take a GPU when the config says cuda:
# a CUDA build of torch then, else the CPU one (paths relative to workflow/rules/*.smk).
GPU_RULE_ENV = "../../envs/refsr-gpu.yaml" if USE_GPU else "../../envs/refsr.yaml"


def checkpoint_of(model):
    """The checkpoint inference uses: trained here, or imported from given weights."""
    if model in PRETRAINED:
        return f"results/imported/{model}/checkpoint.pt"
    return f"results/models/{model}/checkpoint.pt"


def pretrained_path(wildcards):
    return PRETRAINED[wildcards.model]["path"]


MAIN_DEGRADATION = {k: config["degradation"][k] for k in ("test", "train")}
# The degradations LR can be made by (the schema's), and those the ablations' training chain
# (train_variant) can use: every one but the main run's.
DEGRADATIONS = refsr_config.schema()["properties"]["degradation"]["properties"][
    "train"
]["enum"]
OTHER_TRAIN = [d for d in DEGRADATIONS if d != MAIN_DEGRADATION["train"]]


def lr_dir(dataset, test=None, train=None):
    """The LR folder of ``dataset`` whose test / training split is made by ``test`` / ``train``
    (unset: the main run's): ``lr`` itself, or ``lr_test_{test}_train_{train}`` (ablations).
    """
    test, train = test or MAIN_DEGRADATION["test"], train or MAIN_DEGRADATION["train"]
    if (test, train) == (MAIN_DEGRADATION["test"], MAIN_DEGRADATION["train"]):
        return f"results/data/{dataset}/lr"
    return f"results/data/{dataset}/lr_test_{test}_train_{train}"


def chain_prefix(train):
    """Where the models trained on ``train`` LR live: the main run's, or an ablation's chain."""
    return (
        "results"
        if train == MAIN_DEGRADATION["train"]
        else f"results/ablation/train_{train}"
    )


def trained_checkpoint(model, train=None):
    """``model``'s checkpoint trained on ``train`` LR (unset: the main run's); imported weights
    are the same in every chain."""
    if model in PRETRAINED:
        return checkpoint_of(model)
    return f"{chain_prefix(train or MAIN_DEGRADATION['train'])}/models/{model}/checkpoint.pt"


def train_inputs(wildcards):
    """Inputs of train (and train_variant, wildcard ``train``): the training data, its
    correspondences, the parent's checkpoint, all of the same training degradation."""
    train = wildcards.get("train", MAIN_DEGRADATION["train"])
    spec = registry.get(wildcards.model)
    inputs = {
        "manifest": f"results/data/{TRAIN_DS}/manifest.csv",
        "lr": lr_dir(TRAIN_DS, train=train),
    }
    if spec.correspondence:
        inputs["corr"] = f"{chain_prefix(train)}/correspondence/{TRAIN_DS}"
    if spec.parent is not None:
        inputs["init"] = trained_checkpoint(spec.parent, train)
    return inputs


def train_gpus(wildcards):
    """GPUs of a training job: ``train.gpus`` of the config, else one when device is cuda."""
    return config["train"]["gpus"].get(wildcards.model, USE_GPU)


def infer_inputs(wildcards):
    inputs = {
        "manifest": f"results/data/{wildcards.dataset}/manifest.csv",
        "lr": f"results/data/{wildcards.dataset}/lr",
        "tiers": f"results/tiers/{wildcards.dataset}.csv",
    }
    if registry.get(wildcards.model).trainable:
        inputs["checkpoint"] = checkpoint_of(wildcards.model)
    inputs.update(sisr_input(wildcards.model, config["reference"]["degrade"]))
    return inputs


def sisr_input(model, degrade, train=None):
    """reference.degrade sr_model: a reference-based model matches the outputs of the SISR
    model reference.sisr_model (trained on ``train`` LR), whose checkpoint is then an input.
    """
    if degrade == "sr_model" and registry.get(model).uses_reference:
        return {"sisr": trained_checkpoint(config["reference"]["sisr_model"], train)}
    return {}


def infer_gpu(wildcards):
    """Inference takes a GPU (when the config says cuda) for models with a network."""
    return USE_GPU if registry.get(wildcards.model).trainable else 0


def model_targets():
    out = [checkpoint_of(m) for m in TRAIN_MODELS]
    out += [f"results/sr/{ds}/{m}" for ds in config["eval_datasets"] for m in MODELS]
    return out


# --- evaluation, tables, figures, report (workflow/rules/evaluate.smk) ---

EVAL_DATASETS = list(config["eval_datasets"])
# The first evaluated dataset of kind cufed5 gets the "paper vs reproduced" table.
PAPER_DATASET = next(
    (ds for ds in EVAL_DATASETS if config["datasets"][ds]["kind"] == "cufed5"), None
)


def config_subset(*keys):
    """Only the config keys a job uses, as params (other keys changing do not re-run it)."""
    return canonical({key: config[key] for key in keys})


def infer_params(wildcards):
    return infer_params_of(wildcards.model)


def reference_params(model, align=None, degrade=None):
    """The keys of the reference section that change ``model``'s outputs with ``align`` /
    ``degrade`` (unset: the main run's): none for a model without references; the fit's limits
    only when it aligns, max_flow only with the flow, sisr_model only with sr_model. So adding
    or changing a key re-runs only the jobs it affects."""
    if not registry.get(model).uses_reference:
        return None
    ref, main = config["reference"], variants.main_settings(config, model)
    align, degrade = align or main["align"], degrade or main["degrade"]
    out = {"align": align, "degrade": degrade}
    if align != "none":
        out.update(min_inliers=ref["min_inliers"], max_scale=ref["max_scale"])
        out["features"] = {
            k: config["tiers"][k] for k in ("local_features", "ratio", "ransac_px")
        }
    if align == "homography_then_flow":
        out["max_flow"] = ref["max_flow"]
    if degrade == "sr_model":
        out["sisr_model"] = ref["sisr_model"]
    return out


def infer_params_of(model, align=None, degrade=None):
    """What determines the SR images: the matching's memory budget does not (the stage reads
    it from the config), the rest of matching and inference does, and the reference keys that
    matter (reference_params); for a reference-based model of recipe official with swapped
    VGG19 textures (SRNTT), the MatConvNet VGG19 file too. The stage reads the reference and
    tiers sections from the config (``reference`` here is what decides a re-run).
    """
    matching = {k: v for k, v in config["matching"].items() if k != "max_mb"}
    spec = registry.spec_for(model, config)
    official_vgg = (
        spec.recipe == "official" and spec.uses_reference and spec.textures == "swapped"
    )
    return canonical(
        {
            **config_subset(
                "scale",
                "resize",
                "device",
                "vgg19_weights",
                "inference",
            ),
            "reference": reference_params(model, align, degrade),
            "matching": matching,
            "levels": config["evaluation"]["levels"],
            "vgg19_mat": config["official"]["vgg19_mat"] if official_vgg else None,
        }
    )


def correspondence_recipe():
    """The recipe of the models that train from the correspondence cache (one cache serves
    them all, so they must share it: its VGG19 and what it matches follow the recipe).
    """
    recipes = {
        registry.recipe_of(m, config)
        for m in TRAIN_MODELS
        if registry.get(m).correspondence
    }
    if len(recipes) > 1:
        sys.exit(
            "refsr: invalid configuration: config key recipe: the models trained from the "
            f"correspondence cache run different recipes ({', '.join(sorted(recipes))})"
        )
    return next(iter(recipes), "refsr")


def correspondence_inputs(wildcards):
    """The training data, and the SISR checkpoint when official.training_maps is sisr (of
    the same training degradation: wildcard ``train`` of correspondence_variant)."""
    train = wildcards.get("train", MAIN_DEGRADATION["train"])
    inputs = {
        "manifest": f"results/data/{wildcards.dataset}/manifest.csv",
        "lr": lr_dir(wildcards.dataset, train=train),
    }
    if (
        correspondence_recipe() == "official"
        and config["official"]["training_maps"] == "sisr"
    ):
        # the SISR content extractor: the model the correspondence-trained models start from
        inputs["sisr"] = trained_checkpoint(
            next(
                registry.get(m).parent
                for m in registry.names()
                if registry.get(m).correspondence
                and registry.get(m).init == "content_extractor"
            ),
            train,
        )
    return inputs


def correspondence_params():
    """What determines the correspondence cache: the VGG19 and, for recipe official, what is
    matched (official.training_maps; the untrained network's sizes and seed when released).
    """
    recipe = correspondence_recipe()
    out = {"recipe": recipe, "official": None, "arch": None, "seed": None}
    if recipe == "official":
        official = config["official"]
        out["official"] = {k: official[k] for k in ("vgg19_mat", "training_maps")}
        if official["training_maps"] == "released":
            out["arch"] = {k: config["arch"][k] for k in ("n_blocks", "n_feats")}
            out["seed"] = config["seed"]
    return canonical(out)


def train_job_params(wildcards):
    """What determines a model's trained weights (refsr.training.config.train_params)."""
    return canonical(train_params(wildcards.model, config))


def eval_csvs(datasets=None, models=None):
    """Evaluation CSVs of every (dataset, model), datasets outer, models inner."""
    return [
        f"results/eval/{ds}/{m}.csv"
        for ds in (datasets or EVAL_DATASETS)
        for m in (models or MODELS)
    ]


def table_paths():
    """{main,per_level[,paper]}_{csv,md,tex} -> path of the tables rule's outputs."""
    names = {"main": "main", "per_level": "per_level"}
    if PAPER_DATASET is not None:
        names["paper"] = "paper_vs_reproduced"
    return {
        f"{key}_{ext}": f"results/tables/{name}.{ext}"
        for key, name in names.items()
        for ext in ("csv", "md", "tex")
    }


def figure_paths(dataset="{dataset}"):
    """Outputs of the figures rule for one dataset (PNG + PDF of each figure)."""
    stems = {
        "levels": "metric_vs_level",
        "grid": "comparison",
        "corr": "correspondence",
    }
    return {
        f"{key}_{ext}": f"results/figures/{stem}_{dataset}.{ext}"
        for key, stem in stems.items()
        for ext in ("png", "pdf")
    }


# The protocol sentence every evaluation/table/figure caption carries.
PROTOCOL_TEXT = protocol_from_config(config).describe()

_TABLE_CAPTIONS = {
    "main": "../report/main_table.rst",
    "per_level": "../report/per_level_table.rst",
    "paper": "../report/paper_vs_reproduced.rst",
}
_FIGURE_CAPTIONS = {
    "levels": "../report/metric_vs_level.rst",
    "grid": "../report/comparison.rst",
    "corr": "../report/correspondence.rst",
}


def reported_tables():
    """The tables rule's outputs; each CSV is shown in the report with its caption."""
    out = {}
    for key, path in table_paths().items():
        table, ext = key.rsplit("_", 1)
        if ext == "csv":
            out[key] = report(path, caption=_TABLE_CAPTIONS[table], category="Tables")
        else:
            out[key] = path
    return out


def reported_figures():
    """The figures rule's outputs; each PNG is shown in the report with its caption."""
    out = {}
    for key, path in figure_paths().items():
        fig, ext = key.rsplit("_", 1)
        if ext == "png":
            out[key] = report(
                path,
                caption=_FIGURE_CAPTIONS[fig],
                category="Figures",
                subcategory="{dataset}",
            )
        else:
            out[key] = path
    return out


def report_targets():
    """Everything the report shows: evaluation CSVs, tables and figures."""
    out = eval_csvs() + list(table_paths().values())
    for ds in EVAL_DATASETS:
        out += list(figure_paths(ds).values())
    return out


# --- ablations (workflow/rules/ablation.smk; `make ablations`) ---
# A variant's settings and baseline: refsr.evaluation.variants.

VARIANTS = {v["name"]: v for v in config["ablations"]}


def check_variants():
    """Checked when an ablation target is requested (input functions), so that a config whose
    models lack a default variant's model still runs everything else."""
    variants.check_variants(config)


def variant_params(wildcards):
    """What determines a variant's outputs: its model's infer params, the evaluation section
    and the variant's settings (not the other variants, nor its baseline)."""
    v = VARIANTS[wildcards.variant]
    s = variants.settings(config, v)
    return canonical(
        {
            **infer_params_of(v["model"], s["align"], s["degrade"]),
            **config_subset("evaluation"),
            "variant": {"model": v["model"], **s},
        }
    )


def variant_lr(wildcards):
    """The variant's test LR (only the test split is read at inference)."""
    s = variants.settings(config, VARIANTS[wildcards.variant])
    return lr_dir(wildcards.dataset, test=s["test"])


def variant_checkpoints(wildcards):
    """The variant's model checkpoint (of its training degradation), and the SISR model's when
    it matches in the SR domain."""
    v = VARIANTS[wildcards.variant]
    s = variants.settings(config, v)
    if not registry.get(v["model"]).trainable:
        return {}
    return {
        "checkpoint": trained_checkpoint(v["model"], s["train"]),
        **sisr_input(v["model"], s["degrade"], s["train"]),
    }


def ablation_base_csvs(wildcards=None):
    check_variants()
    models = sorted({v["model"] for v in VARIANTS.values()})
    return eval_csvs(models=models) if models else []


def ablation_run_csvs(wildcards=None):
    return [
        f"results/ablation/{ds}/{name}.csv" for ds in EVAL_DATASETS for name in VARIANTS
    ]


def match_study_datasets():
    """The evaluation datasets the match study can use: those of kind embedded."""
    return [ds for ds in EVAL_DATASETS if config["datasets"][ds]["kind"] == "embedded"]


def ablation_targets(wildcards=None):
    check_variants()
    out = []
    if VARIANTS:
        out += ["results/tables/ablation.csv", "results/figures/ablation_deltas.png"]
    out += [f"results/tables/match_accuracy_{ds}.csv" for ds in match_study_datasets()]
    return out

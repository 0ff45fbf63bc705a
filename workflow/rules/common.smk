# Shared declarations: the validated config, the plan of what is built, thin lookups for the
# rules. Everything computed lives in the package: what is built and where (refsr.pipeline.plan),
# each rule's params (refsr.pipeline.jobs), the models (refsr.models.registry), the config's keys
# and defaults (the schema inside the package, refsr/core/config.schema.yaml).

import os
import re
import sys
from pathlib import Path

from refsr.core import config as refsr_config
from refsr.core.errors import RefsrError
from refsr.data.checks import check_datasets
from refsr.models import importers, registry
from refsr.pipeline import jobs
from refsr.pipeline.plan import Plan, degradations

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


# Validated once (defaults from the schema), then the checks that open no image: every rule
# below sees the complete config, and a bad one fails before any job with one line.
try:
    _validated = refsr_config.validate(config)
    registry.check_config(_validated)
    importers.check_config(_validated)
    check_datasets(_validated)  # the build_dataset job's cheap checks, at DAG build
except RefsrError as err:
    sys.exit(f"refsr: invalid configuration: {err}")
config.clear()
config.update(_validated)

PLAN = Plan(config)
USE_GPU = PLAN.use_gpu
VARIANTS = PLAN.variants
# Conda environment (--sdm conda) of the rules that take a GPU when the config says cuda:
# a CUDA build of torch then, else the CPU one (paths relative to workflow/rules/*.smk).
GPU_RULE_ENV = "../../envs/refsr-gpu.yaml" if USE_GPU else "../../envs/refsr.yaml"


wildcard_constraints:
    dataset="|".join(map(re.escape, PLAN.datasets)),
    model="|".join(registry.names()),


def data_targets():
    return PLAN.data_targets()


def model_targets():
    return PLAN.model_targets()


def report_targets():
    return PLAN.report_targets()


# The report: each table's CSV and each figure's PNG with its caption.
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
    out = PLAN.table_paths()
    for table, caption in _TABLE_CAPTIONS.items():
        if f"{table}_csv" in out:
            out[f"{table}_csv"] = report(
                out[f"{table}_csv"], caption=caption, category="Tables"
            )
    return out


def reported_figures():
    out = PLAN.figure_paths()
    for fig, caption in _FIGURE_CAPTIONS.items():
        out[f"{fig}_png"] = report(
            out[f"{fig}_png"],
            caption=caption,
            category="Figures",
            subcategory="{dataset}",
        )
    return out

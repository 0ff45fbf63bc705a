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
from refsr.evaluation import external
from refsr.models import importers, registry
from refsr.pipeline import jobs
from refsr.pipeline.plan import Plan, degradations

# Rule scripts import refsr installed in the Python that runs them: this one's (.venv, where
# `make venv` installs it editable), or a conda environment's from envs/, into which
# envs/*.post-deploy.sh installs this checkout the same way; it reads the checkout from here.
os.environ["REFSR_CHECKOUT"] = str(Path(workflow.basedir).parent)


envvars:
    "REFSR_CHECKOUT",


# Validated once (defaults from the schema), then the checks that open no image: every rule
# below sees the complete config, and a bad one fails before any job with one line.
try:
    _validated = refsr_config.validate(config)
    check_datasets(_validated)  # the build_dataset job's cheap checks, at DAG build
    # models, recipes, and training pairs when it trains
    registry.check_config(_validated)
    importers.check_config(_validated)
    importers.check_files(_validated)
    external.check_config(_validated, registry.names())
except RefsrError as err:
    sys.exit(f"refsr: invalid configuration: {err}")
config.clear()
config.update(_validated)

PLAN = Plan(config)
try:
    # external methods' folders; their images too once the dataset and tiers are built
    PLAN.check_external()
except RefsrError as err:
    sys.exit(f"refsr: {err}")
USE_GPU = PLAN.use_gpu
VARIANTS = PLAN.variants
# Conda environment (--sdm conda) of the rules that take a GPU when the config says cuda:
# a CUDA build of torch then, else the CPU one (paths relative to workflow/rules/*.smk).
GPU_RULE_ENV = "../../envs/refsr-gpu.yaml" if USE_GPU else "../../envs/refsr.yaml"


wildcard_constraints:
    dataset="|".join(map(re.escape, PLAN.datasets)),
    # the models of the registry, and the external methods (evaluated, not run)
    model="|".join(map(re.escape, registry.names() + list(PLAN.external))),


def paper_tables():
    """The paper-vs-reproduced table's outputs, when a cufed5 dataset is evaluated."""
    if PLAN.paper_dataset is None:
        return {}
    return {
        "paper_csv": report(
            "results/tables/paper_vs_reproduced.csv",
            caption="../report/paper_vs_reproduced.rst",
            category="Tables",
        ),
        "paper_md": "results/tables/paper_vs_reproduced.md",
        "paper_tex": "results/tables/paper_vs_reproduced.tex",
    }


def benchmark_tables():
    """The benchmark table's outputs, when a method comes from elsewhere (PLAN.benchmark)."""
    if not PLAN.benchmark:
        return {}
    return {
        "benchmark_csv": report(
            "results/tables/benchmark.csv",
            caption="../report/benchmark.rst",
            category="Tables",
        ),
        "benchmark_md": "results/tables/benchmark.md",
        "benchmark_tex": "results/tables/benchmark.tex",
    }

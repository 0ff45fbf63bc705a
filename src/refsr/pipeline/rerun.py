"""What a config change re-runs, asked of the job specs directly (no Snakemake, no dry run).

:func:`main_jobs` lists the main run's jobs (rule and wildcards, as :class:`~refsr.pipeline.plan.Plan`
builds the DAG) and :func:`params_of` gives a job's params exactly as its rule does
(:mod:`refsr.pipeline.jobs`). :func:`changed` compares two validated configs: the jobs whose
params differ, and the jobs present under only one of them. Snakemake then re-runs those and
everything downstream of them (their outputs are newer inputs); the docs' table "What a config
change re-runs" is tested row by row with this function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from refsr.models import registry
from refsr.pipeline import jobs
from refsr.pipeline.plan import Plan

#: rule -> (job spec function, the wildcards it takes).
SPECS: dict[str, tuple[Callable[..., dict], tuple[str, ...]]] = {
    "build_dataset": (jobs.build_dataset, ("dataset",)),
    "degrade": (jobs.degrade, ()),
    "tiers": (jobs.tiers, ()),
    "correspondence": (jobs.correspondence, ()),
    "train": (jobs.train, ("model",)),
    "import_weights": (jobs.import_weights, ("model",)),
    "infer": (jobs.infer, ("model",)),
    "external_outputs": (jobs.external_outputs, ("external_name",)),
    "evaluate": (jobs.evaluate, ("model",)),
    "evaluate_presets": (jobs.evaluate_presets, ("model",)),
    "tables": (jobs.tables, ()),
    "figures": (jobs.figures, ()),
}

Job = tuple[str, tuple[tuple[str, str], ...]]


def main_jobs(config: Mapping) -> list[Job]:
    """The main run's jobs (``snakemake`` without a target): (rule, ((wildcard, value), ...))."""
    plan = Plan(config)
    out: list[Job] = []
    for ds in plan.datasets:
        out += [(rule, (("dataset", ds),)) for rule in ("build_dataset", "degrade", "tiers")]
    if any(registry.get(m).correspondence for m in plan.train_models):
        out.append(("correspondence", (("dataset", config["train_dataset"]),)))
    out += [("train", (("model", m),)) for m in plan.train_models]
    out += [("import_weights", (("model", m),)) for m in plan.pretrained]
    for ds in plan.eval_datasets:
        for m in plan.models:
            out += [(rule, (("dataset", ds), ("model", m))) for rule in ("infer", "evaluate")]
        for m in plan.external:
            out += [("external_outputs", (("dataset", ds), ("external_name", m))),
                    ("evaluate", (("dataset", ds), ("model", m)))]
        if plan.benchmark:
            out += [("evaluate_presets", (("dataset", ds), ("model", m))) for m in plan.methods]
        out.append(("figures", (("dataset", ds),)))
    out.append(("tables", ()))
    return out


def params_of(config: Mapping, job: Job) -> dict:
    """The params of ``job`` under ``config``, as its rule computes them."""
    rule, wildcards = job
    spec, takes = SPECS[rule]
    return spec(config, **{k: v for k, v in wildcards if k in takes})


def changed(old: Mapping, new: Mapping) -> dict[str, list[str]]:
    """Rule -> the jobs (their wildcard values joined by ``/``; ``""`` for none) whose params
    differ between two validated configs, or that exist under only one of them."""
    before, after = main_jobs(old), main_jobs(new)
    out: dict[str, list[str]] = {}
    for job in dict.fromkeys(before + after):
        if job not in before or job not in after or params_of(old, job) != params_of(new, job):
            out.setdefault(job[0], []).append("/".join(v for _, v in job[1]))
    return out

# Ablations (`make ablations`, target `ablations`; not part of `make run`): the config's
# `ablations` variants against their models' main runs, and the known-correspondence matching
# study. Inputs and outputs: refsr.pipeline.plan (PLAN); params: refsr.pipeline.jobs.


rule ablation_variant:
    input:
        unpack(lambda wc: PLAN.variant_checkpoints(wc.variant)),
        manifest="results/data/{dataset}/manifest.csv",
        images="results/data/{dataset}/images",
        lr=lambda wc: PLAN.variant_lr(wc.dataset, wc.variant),
        tiers="results/tiers/{dataset}.csv",
    output:
        sr=directory("results/ablation/{dataset}/{variant}/sr"),
        csv="results/ablation/{dataset}/{variant}.csv",
        json="results/ablation/{dataset}/{variant}.json",
    log:
        "results/logs/ablation/{dataset}/{variant}.log",
    benchmark:
        "results/benchmarks/ablation/{dataset}/{variant}.tsv"
    wildcard_constraints:
        variant="|".join(VARIANTS) or "no_variant",
    conda:
        GPU_RULE_ENV
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=USE_GPU,
    params:
        job=lambda wc: jobs.ablation_variant(config, wc.variant),
    script:
        "../../scripts/ablation_variant.py"


rule degrade_variant:
    input:
        manifest="results/data/{dataset}/manifest.csv",
        images="results/data/{dataset}/images",
    output:
        directory("results/data/{dataset}/lr_test_{test}_train_{train}"),
    log:
        "results/logs/degrade/{dataset}_test_{test}_train_{train}.log",
    benchmark:
        "results/benchmarks/degrade/{dataset}_test_{test}_train_{train}.tsv"
    wildcard_constraints:
        test="|".join(degradations()),
        train="|".join(degradations()),
    conda:
        "../../envs/refsr.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        job=lambda wc: jobs.degrade(config, wc.test, wc.train),
    script:
        "../../scripts/degrade.py"


# A variant with another training degradation (train_degradation) trains its model and every
# model it starts from again, on that LR, with their own correspondence cache: the main run's
# rules with the chain's paths (results/ablation/train_{train}/).
use rule correspondence as correspondence_variant with:
    output:
        directory("results/ablation/train_{train}/correspondence/{dataset}"),
    log:
        "results/logs/ablation/train_{train}/correspondence/{dataset}.log",
    benchmark:
        "results/benchmarks/ablation/train_{train}/correspondence/{dataset}.tsv"
    wildcard_constraints:
        train="|".join(PLAN.other_train),


use rule train as train_variant with:
    output:
        checkpoint="results/ablation/train_{train}/models/{model}/checkpoint.pt",
        log_csv="results/ablation/train_{train}/models/{model}/train_log.csv",
    log:
        "results/logs/ablation/train_{train}/train/{model}.log",
    benchmark:
        "results/benchmarks/ablation/train_{train}/train/{model}.tsv"
    wildcard_constraints:
        model="|".join(registry.trainable()),
        train="|".join(PLAN.other_train),


rule ablation:
    input:
        base=lambda wc: PLAN.ablation_base_csvs(),
        runs=lambda wc: PLAN.ablation_runs("csv"),
        sr=lambda wc: PLAN.ablation_runs("sr"),
    output:
        csv=report(
            "results/tables/ablation.csv",
            caption="../report/ablation.rst",
            category="Ablations",
        ),
        md="results/tables/ablation.md",
        tex="results/tables/ablation.tex",
        png=report(
            "results/figures/ablation_deltas.png",
            caption="../report/ablation.rst",
            category="Ablations",
        ),
        pdf="results/figures/ablation_deltas.pdf",
    log:
        "results/logs/ablation.log",
    benchmark:
        "results/benchmarks/ablation.tsv"
    conda:
        "../../envs/refsr.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        job=jobs.ablation(config),
    script:
        "../../scripts/ablation.py"


rule match_study:
    input:
        checkpoint=PLAN.checkpoint(config["match_study"]["sisr_model"]),
    output:
        csv=report(
            "results/tables/match_accuracy_{dataset}.csv",
            caption="../report/match_accuracy.rst",
            category="Ablations",
        ),
        md="results/tables/match_accuracy_{dataset}.md",
        tex="results/tables/match_accuracy_{dataset}.tex",
    log:
        "results/logs/match_study/{dataset}.log",
    benchmark:
        "results/benchmarks/match_study/{dataset}.tsv"
    conda:
        "../../envs/refsr.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        job=lambda wc: jobs.match_study(config, wc.dataset),
    script:
        "../../scripts/match_study.py"


rule ablations:
    input:
        lambda wc: PLAN.ablation_targets(),

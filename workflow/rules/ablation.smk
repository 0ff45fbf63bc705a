# Ablations (`make ablations`, target `ablations`; not part of `make run`): the config's
# `ablations` variants against their models' main runs, and the known-correspondence matching
# study. Helpers (ablation_targets, match_study_datasets) live in common.smk.


rule ablation_variant:
    input:
        unpack(variant_checkpoints),
        manifest="results/data/{dataset}/manifest.csv",
        images="results/data/{dataset}/images",
        lr=variant_lr,
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
        config=variant_params,
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
        test="|".join(DEGRADATIONS),
        train="|".join(DEGRADATIONS),
    conda:
        "../../envs/refsr.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        scale=config["scale"],
        resize=config["resize"],
        degradation=lambda wc: {
            **config["degradation"],
            "test": wc.test,
            "train": wc.train,
        },
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
        train="|".join(OTHER_TRAIN),


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
        train="|".join(OTHER_TRAIN),
    params:
        train=train_job_params,
        scale=config["scale"],
        vgg19_weights=config["vgg19_weights"],
        state=lambda wc: f"results/checkpoints/ablation/train_{wc.train}/{wc.model}/state.pt",


rule ablation:
    input:
        base=ablation_base_csvs,
        runs=ablation_run_csvs,
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
        config=config_subset(
            "evaluation",
            "ablations",
            "reference",
            "models",
            "degradation",
            "pretrained",
        ),
        protocol=PROTOCOL_TEXT,
    script:
        "../../scripts/ablation.py"


rule match_study:
    input:
        checkpoint=checkpoint_of(config["match_study"]["sisr_model"]),
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
        config=config_subset(
            "scale",
            "resize",
            "device",
            "vgg19_weights",
            "datasets",
            "matching",
            "reference",
            "tiers",
            "match_study",
        ),
    script:
        "../../scripts/match_study.py"


rule ablations:
    input:
        ablation_targets,

# Data stage: dataset -> degrade (HR -> LR x4) -> similarity tiers.


rule build_dataset:
    output:
        manifest="results/data/{dataset}/manifest.csv",
        images=directory("results/data/{dataset}/images"),
    log:
        "results/logs/build_dataset/{dataset}.log",
    benchmark:
        "results/benchmarks/build_dataset/{dataset}.tsv"
    conda:
        "../../envs/refsr.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        job=lambda wc: jobs.build_dataset(config, wc.dataset),
    script:
        "../../scripts/build_dataset.py"


rule degrade:
    input:
        manifest="results/data/{dataset}/manifest.csv",
        images="results/data/{dataset}/images",
    output:
        directory("results/data/{dataset}/lr"),
    log:
        "results/logs/degrade/{dataset}.log",
    benchmark:
        "results/benchmarks/degrade/{dataset}.tsv"
    conda:
        "../../envs/refsr.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        job=jobs.degrade(config),
    script:
        "../../scripts/degrade.py"


rule tiers:
    input:
        manifest="results/data/{dataset}/manifest.csv",
        images="results/data/{dataset}/images",
        lr="results/data/{dataset}/lr",
    output:
        csv="results/tiers/{dataset}.csv",
        agreement_csv="results/tiers/{dataset}_agreement.csv",
        agreement_md="results/tiers/{dataset}_agreement.md",
        png=report(
            "results/figures/tiers_{dataset}.png",
            caption="../report/tiers.rst",
            category="Similarity tiers",
        ),
        pdf="results/figures/tiers_{dataset}.pdf",
    log:
        "results/logs/tiers/{dataset}.log",
    benchmark:
        "results/benchmarks/tiers/{dataset}.tsv"
    conda:
        "../../envs/refsr.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        job=jobs.tiers(config),
    script:
        "../../scripts/tiers.py"

# Evaluation per similarity level -> tables (CSV + Markdown + LaTeX) -> figures.
# Helpers (EVAL_DATASETS, PAPER_DATASET, PROTOCOL_TEXT, eval_csvs, reported_tables,
# reported_figures) live at the end of common.smk.


rule evaluate:
    input:
        manifest="results/data/{dataset}/manifest.csv",
        images="results/data/{dataset}/images",
        sr="results/sr/{dataset}/{model}",
        tiers="results/tiers/{dataset}.csv",
    output:
        csv=report(
            "results/eval/{dataset}/{model}.csv",
            caption="../report/evaluate.rst",
            category="Evaluation",
            subcategory="{dataset}",
        ),
        json="results/eval/{dataset}/{model}.json",
    log:
        "results/logs/evaluate/{dataset}/{model}.log",
    benchmark:
        "results/benchmarks/evaluate/{dataset}/{model}.tsv"
    conda:
        GPU_RULE_ENV
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=USE_GPU,
    params:
        config=config_subset("scale", "resize", "device", "evaluation"),
        protocol=PROTOCOL_TEXT,
    script:
        "../../scripts/evaluate.py"


rule tables:
    input:
        csv=eval_csvs(),
        json=[p.replace(".csv", ".json") for p in eval_csvs()],
    output:
        **reported_tables(),
    log:
        "results/logs/tables.log",
    benchmark:
        "results/benchmarks/tables.tsv"
    conda:
        "../../envs/refsr.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        config=canonical(config),  # all of it: the captions carry its hash
        models=MODELS,
        datasets=EVAL_DATASETS,
        paper_dataset=PAPER_DATASET,
        repo=workflow.basedir,
        protocol=PROTOCOL_TEXT,
    script:
        "../../scripts/tables.py"


rule figures:
    input:
        csv=lambda wc: eval_csvs([wc.dataset]),
        json=lambda wc: [p.replace(".csv", ".json") for p in eval_csvs([wc.dataset])],
        sr=lambda wc: [f"results/sr/{wc.dataset}/{m}" for m in MODELS],
        manifest="results/data/{dataset}/manifest.csv",
        images="results/data/{dataset}/images",
        lr="results/data/{dataset}/lr",
        tiers="results/tiers/{dataset}.csv",
        learned=[checkpoint_of(m) for m in LEARNED_TEXTURE_MODELS],
    output:
        **reported_figures(),
    log:
        "results/logs/figures/{dataset}.log",
    benchmark:
        "results/benchmarks/figures/{dataset}.tsv"
    conda:
        "../../envs/refsr.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        config=config_subset(
            "scale", "resize", "vgg19_weights", "matching", "evaluation"
        ),
        models=MODELS,
        learned=LEARNED_TEXTURE_MODELS,
        sr_root="results/sr/{dataset}",
        protocol=PROTOCOL_TEXT,
    script:
        "../../scripts/figures.py"

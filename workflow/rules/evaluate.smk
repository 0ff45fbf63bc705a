# Evaluation per similarity level -> tables (CSV + Markdown + LaTeX) -> figures.
# Inputs and outputs: refsr.pipeline.plan (PLAN); params: refsr.pipeline.jobs.


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
        job=lambda wc: jobs.evaluate(config, wc.model),
    script:
        "../../scripts/evaluate.py"


# The benchmark table's protocol comparison: L1 and ALL_STITCHED under every preset.
rule evaluate_presets:
    input:
        manifest="results/data/{dataset}/manifest.csv",
        images="results/data/{dataset}/images",
        sr="results/sr/{dataset}/{model}",
        tiers="results/tiers/{dataset}.csv",
    output:
        "results/eval/{dataset}/presets/{model}.csv",
    log:
        "results/logs/evaluate_presets/{dataset}/{model}.log",
    benchmark:
        "results/benchmarks/evaluate_presets/{dataset}/{model}.tsv"
    conda:
        "../../envs/refsr.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        job=lambda wc: jobs.evaluate_presets(config, wc.model),
    script:
        "../../scripts/evaluate_presets.py"


rule tables:
    input:
        csv=PLAN.eval_csvs(),
        json=PLAN.eval_jsons(),
        presets=PLAN.preset_csvs(),
        released=PLAN.released_records(),
    output:
        **paper_tables(),
        **benchmark_tables(),
        main_csv=report(
            "results/tables/main.csv",
            caption="../report/main_table.rst",
            category="Tables",
        ),
        main_md="results/tables/main.md",
        main_tex="results/tables/main.tex",
        per_level_csv=report(
            "results/tables/per_level.csv",
            caption="../report/per_level_table.rst",
            category="Tables",
        ),
        per_level_md="results/tables/per_level.md",
        per_level_tex="results/tables/per_level.tex",
        # only with a cufed5 dataset evaluated (PLAN.paper_dataset)
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
        job=jobs.tables(config),
    script:
        "../../scripts/tables.py"


rule figures:
    input:
        unpack(lambda wc: PLAN.figures_inputs(wc.dataset)),
    output:
        levels_png=report(
            "results/figures/metric_vs_level_{dataset}.png",
            caption="../report/metric_vs_level.rst",
            category="Figures",
            subcategory="{dataset}",
        ),
        levels_pdf="results/figures/metric_vs_level_{dataset}.pdf",
        grid_png=report(
            "results/figures/comparison_{dataset}.png",
            caption="../report/comparison.rst",
            category="Figures",
            subcategory="{dataset}",
        ),
        grid_pdf="results/figures/comparison_{dataset}.pdf",
        corr_png=report(
            "results/figures/correspondence_{dataset}.png",
            caption="../report/correspondence.rst",
            category="Figures",
            subcategory="{dataset}",
        ),
        corr_pdf="results/figures/correspondence_{dataset}.pdf",
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
        job=jobs.figures(config),
    script:
        "../../scripts/figures.py"

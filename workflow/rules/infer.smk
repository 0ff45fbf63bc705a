# Inference: every model on every test group and level (L1..L5, LR, HR) of a dataset.


rule infer:
    input:
        unpack(lambda wc: PLAN.infer_inputs(wc.dataset, wc.model)),
    output:
        directory("results/sr/{dataset}/{model}"),
    log:
        "results/logs/infer/{dataset}/{model}.log",
    benchmark:
        "results/benchmarks/infer/{dataset}/{model}.tsv"
    conda:
        GPU_RULE_ENV
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=lambda wc: PLAN.infer_gpu(wc.model),
    params:
        job=lambda wc: jobs.infer(config, wc.model),
    script:
        "../../scripts/infer.py"

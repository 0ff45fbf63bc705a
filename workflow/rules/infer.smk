# Inference: every model on every test group and level (L1..L5, LR, HR) of a dataset.


rule infer:
    input:
        unpack(infer_inputs),
    output:
        directory("results/sr/{dataset}/{model}"),
    params:
        config=config_subset("scale", "resize", "device", "vgg19_weights", "matching", "inference"),
    log:
        "results/logs/infer/{dataset}/{model}.log",
    benchmark:
        "results/benchmarks/infer/{dataset}/{model}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=lambda wc: USE_GPU if wc.model != "bicubic" else 0,
    conda:
        GPU_RULE_ENV
    script:
        "../../scripts/infer.py"

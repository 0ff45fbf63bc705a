# Inference: every model on every test group and level (L1..L5, LR, HR) of a dataset; external methods' SR images.


rule infer:
    input:
        unpack(lambda wc: PLAN.infer_inputs(wc.dataset, wc.model)),
    output:
        directory("results/sr/{dataset}/{model}"),
    log:
        "results/logs/infer/{dataset}/{model}.log",
    benchmark:
        "results/benchmarks/infer/{dataset}/{model}.tsv"
    wildcard_constraints:
        model="|".join(registry.names()),
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


# An external method's SR images (config external): checked (missing, unreadable, mis-sized:
# all in one line) and copied into the layout of rule infer; rule evaluate scores them.
rule external_outputs:
    input:
        unpack(lambda wc: PLAN.external_inputs(wc.dataset, wc.external)),
    output:
        directory("results/sr/{dataset}/{external}"),
    log:
        "results/logs/external_outputs/{dataset}/{external}.log",
    benchmark:
        "results/benchmarks/external_outputs/{dataset}/{external}.tsv"
    wildcard_constraints:
        external="|".join(map(re.escape, PLAN.external)) or "(?!)",
    conda:
        "../../envs/refsr.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        job=lambda wc: jobs.external_outputs(config, wc.external),
    script:
        "../../scripts/external_outputs.py"

# Training: the correspondence cache, then one job per trainable model of the registry
# (src/refsr/models/registry.py), each after the model it starts from
# (srresnet -> srgan, srresnet -> srntt_l2 -> srntt).


rule correspondence:
    input:
        unpack(lambda wc: PLAN.correspondence_inputs(wc.dataset, wc.get("train"))),
    output:
        directory("results/correspondence/{dataset}"),
    log:
        "results/logs/correspondence/{dataset}.log",
    benchmark:
        "results/benchmarks/correspondence/{dataset}.tsv"
    conda:
        "../../envs/refsr.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        job=jobs.correspondence(config),
    script:
        "../../scripts/correspondence.py"


rule train:
    input:
        unpack(lambda wc: PLAN.train_inputs(wc.model, wc.get("train"))),
    output:
        checkpoint="results/models/{model}/checkpoint.pt",
        log_csv=report(
            "results/models/{model}/train_log.csv",
            caption="../report/train_log.rst",
            category="Training",
            subcategory="{model}",
        ),
    log:
        "results/logs/train/{model}.log",
    benchmark:
        "results/benchmarks/train/{model}.tsv"
    wildcard_constraints:
        model="|".join(registry.trainable()),
    conda:
        GPU_RULE_ENV
    threads: 2
    resources:
        mem_mb=8000,
        runtime=1440,
        gpu=lambda wc: PLAN.train_gpus(wc.model),
    params:
        job=lambda wc: jobs.train(config, wc.model),
        state=lambda wc: PLAN.state(wc.model, wc.get("train")),
    script:
        "../../scripts/train.py"


rule import_weights:
    input:
        lambda wc: PLAN.pretrained[wc.model]["path"],
    output:
        checkpoint="results/imported/{model}/checkpoint.pt",
        released="results/imported/{model}/released.json",
    log:
        "results/logs/import_weights/{model}.log",
    benchmark:
        "results/benchmarks/import_weights/{model}.tsv"
    conda:
        "../../envs/refsr.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        job=lambda wc: jobs.import_weights(config, wc.model),
    script:
        "../../scripts/import_weights.py"

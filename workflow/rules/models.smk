# Training: the correspondence cache, then one job per trainable model of the registry
# (src/refsr/models/registry.py), each after the model it starts from
# (srresnet -> srgan, srresnet -> srntt_l2 -> srntt).


rule correspondence:
    input:
        unpack(correspondence_inputs),
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
        **correspondence_params(),
        scale=config["scale"],
        resize=config["resize"],
        vgg19_weights=config["vgg19_weights"],
    script:
        "../../scripts/correspondence.py"


rule train:
    input:
        unpack(train_inputs),
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
        gpu=train_gpus,
    params:
        train=train_job_params,
        scale=config["scale"],
        vgg19_weights=config["vgg19_weights"],
        state=lambda wc: f"results/checkpoints/{wc.model}/state.pt",
    script:
        "../../scripts/train.py"


rule import_weights:
    input:
        pretrained_path,
    output:
        "results/imported/{model}/checkpoint.pt",
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
        source=lambda wc: PRETRAINED[wc.model]["source"],
        recipe=lambda wc: registry.recipe_of(wc.model, config),
    script:
        "../../scripts/import_weights.py"

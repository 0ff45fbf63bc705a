# Training: correspondence cache, then one rule per model along the chains
# srresnet -> srgan and srresnet -> srntt_l2 -> srntt.


rule correspondence:
    input:
        manifest="results/data/{dataset}/manifest.csv",
        lr="results/data/{dataset}/lr",
    output:
        directory("results/correspondence/{dataset}"),
    params:
        scale=config["scale"],
        resize=config["resize"],
        max_mb=config["matching"]["max_mb"],
        vgg19_weights=config["vgg19_weights"],
    log:
        "results/logs/correspondence/{dataset}.log",
    benchmark:
        "results/benchmarks/correspondence/{dataset}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/refsr.yaml"
    script:
        "../../scripts/correspondence.py"


rule train_srresnet:
    input:
        **train_inputs("srresnet"),
    output:
        checkpoint="results/models/srresnet/checkpoint.pt",
        log_csv=report(
            "results/models/srresnet/train_log.csv",
            caption="../report/train_log.rst",
            category="Training",
        ),
    params:
        train=train_params("srresnet", config),
        scale=config["scale"],
        vgg19_weights=config["vgg19_weights"],
        state="results/checkpoints/srresnet/state.pt",
    log:
        "results/logs/train/srresnet.log",
    benchmark:
        "results/benchmarks/train/srresnet.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=1440,
        gpu=USE_GPU,
    conda:
        GPU_RULE_ENV
    script:
        "../../scripts/train.py"


use rule train_srresnet as train_srgan with:
    input:
        **train_inputs("srgan"),
    output:
        checkpoint="results/models/srgan/checkpoint.pt",
        log_csv="results/models/srgan/train_log.csv",
    params:
        train=train_params("srgan", config),
        scale=config["scale"],
        vgg19_weights=config["vgg19_weights"],
        state="results/checkpoints/srgan/state.pt",
    log:
        "results/logs/train/srgan.log",
    benchmark:
        "results/benchmarks/train/srgan.tsv"


use rule train_srresnet as train_srntt_l2 with:
    input:
        **train_inputs("srntt_l2"),
    output:
        checkpoint="results/models/srntt_l2/checkpoint.pt",
        log_csv="results/models/srntt_l2/train_log.csv",
    params:
        train=train_params("srntt_l2", config),
        scale=config["scale"],
        vgg19_weights=config["vgg19_weights"],
        state="results/checkpoints/srntt_l2/state.pt",
    log:
        "results/logs/train/srntt_l2.log",
    benchmark:
        "results/benchmarks/train/srntt_l2.tsv"


use rule train_srresnet as train_srntt with:
    input:
        **train_inputs("srntt"),
    output:
        checkpoint="results/models/srntt/checkpoint.pt",
        log_csv="results/models/srntt/train_log.csv",
    params:
        train=train_params("srntt", config),
        scale=config["scale"],
        vgg19_weights=config["vgg19_weights"],
        state="results/checkpoints/srntt/state.pt",
    log:
        "results/logs/train/srntt.log",
    benchmark:
        "results/benchmarks/train/srntt.tsv"

# Offline compute nodes: `snakemake download_weights` (a local rule: it runs where Snakemake
# runs, e.g. a cluster's login node) fills the torch hub cache with every pretrained weight
# this config would download (VGG19, the LPIPS AlexNet). Jobs then never need the network.
# It has no output file and no benchmark (which Snakemake would treat as one): every call
# checks the cache and fetches only what is missing.


rule download_weights:
    log:
        "results/logs/download_weights.log",
    localrule: True
    conda:
        "../../envs/refsr.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        job=jobs.download_weights(config),
    script:
        "../../scripts/download_weights.py"

"""Rule infer: one model on every test group and level of one dataset."""

from refsr.datasets import read_manifest
from refsr.infer import SuperResolver, run_inference
from refsr.scripting import run


def main(smk):
    cfg = smk.params.config
    ds = read_manifest(smk.input.manifest, smk.wildcards.dataset)
    resolver = SuperResolver(smk.input.get("checkpoint"), model=smk.wildcards.model,
                             vgg_weights=cfg["vgg19_weights"], device=cfg["device"],
                             max_mb=cfg["matching"]["max_mb"], tile=cfg["inference"]["tile"],
                             pad=cfg["inference"]["pad"], scale=cfg["scale"], resize=cfg["resize"],
                             match_mode=cfg["matching"].get("mode", "exact"),
                             approx=cfg["matching"].get("approximate"))
    run_inference(ds, smk.input.lr, smk.input.tiers, resolver, smk.output[0])


run(main, snakemake)  # noqa: F821

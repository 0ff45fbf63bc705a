"""Rule correspondence: relu3_1 indices (int32) + S* (fp16) of every training pair."""

from refsr.datasets import read_manifest
from refsr.scripting import run
from refsr.train_data import build_correspondence_cache
from refsr.vgg import load_vgg19


def main(smk):
    ds = read_manifest(smk.input.manifest, smk.wildcards.dataset)
    vgg = load_vgg19(("relu3_1",), weights=smk.params.vgg19_weights)
    build_correspondence_cache(ds, smk.input.lr, smk.output[0], vgg, smk.params.scale,
                               smk.params.resize, smk.params.max_mb)


run(main, snakemake)  # noqa: F821

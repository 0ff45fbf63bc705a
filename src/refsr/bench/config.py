"""The config the benchmarks size things by: ``config.yaml`` when there (validated, defaults
from the schema), and the paper's network sizes (the schema's defaults)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

from refsr.core import config as pipeline_config

#: Config sections (dotted paths) that set network sizes; ``sized(cfg, "paper")`` resets them
#: to the schema's.
SIZE_SECTIONS = ("arch", "discriminator", "ttsr.arch")


def bench_config(path: str | os.PathLike = "config.yaml") -> dict:
    """The validated config at ``path``, or the schema's defaults when there is no such file."""
    return pipeline_config.load(path if Path(path).is_file() else None)


def sized(cfg: dict, which: str) -> dict:
    """``cfg`` with the network sizes of ``which``: ``default`` (the config's own) or
    ``paper`` (the schema's defaults, which are the paper's sizes)."""
    if which == "default":
        return cfg
    if which != "paper":
        raise ValueError(f"unknown size {which!r} (default, paper)")
    out = copy.deepcopy(cfg)
    for section in SIZE_SECTIONS:
        *parents, last = section.split(".")
        node = out
        for part in parents:
            node = node[part]
        node[last] = pipeline_config.defaults(section)
    return out

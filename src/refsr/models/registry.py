"""The model registry: the one place a method is declared.

Every other part of refsr reads this table: the Snakemake rules (which models train, what
each training job needs), the trainer (what a model starts from and which losses it uses),
inference (whether a model takes references), the tables and figures (labels, which rows
ignore the reference) and the benchmarks. It imports nothing heavy (no torch), so the
workflow can read it while it builds the DAG.

Adding a method: one architecture file in ``refsr/models/``, one :class:`ModelSpec` entry
below, and its config section (its iterations under ``train.iterations`` in the schema and
the configs; its sizes in the section named by ``arch_section``). See
``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from refsr.core.errors import RefsrError

#: What a model is, as the tables and inference need to know.
INTERPOLATION, SINGLE_IMAGE, REFERENCE_BASED = "interpolation", "single-image", "reference-based"
KINDS = (INTERPOLATION, SINGLE_IMAGE, REFERENCE_BASED)
#: What a model takes from its parent: every weight, or only the content extractor.
INIT_MODES = ("full", "content_extractor")
#: Loss terms a model can train with (see :mod:`refsr.training.losses`).
LOSS_TERMS = ("reconstruction", "perceptual", "texture", "adversarial")


@dataclass(frozen=True)
class ModelSpec:
    """One method of the pipeline.

    * ``architecture``: ``"module:Class"`` of its network (``None``: nothing to train, e.g.
      bicubic), built with the keys ``arch_keys`` of the config section ``arch_section``.
    * ``parent`` / ``init``: the trained model it starts from, and what is copied from it.
    * ``losses``: the loss terms it trains with (the others are switched off).
    * ``correspondence``: whether training needs the correspondence cache (reference-based).
    * ``trainer``: ``"module:Class"`` of its training loop (see
      :class:`refsr.training.trainer.Trainer` for the interface a training method provides).
    """

    name: str
    kind: str
    label: str
    architecture: str | None = None
    arch_section: str = "arch"
    arch_keys: tuple[str, ...] = ()
    parent: str | None = None
    init: str | None = None
    losses: tuple[str, ...] = ()
    correspondence: bool = False
    trainer: str = "refsr.training.trainer:Trainer"

    def __post_init__(self) -> None:
        assert self.kind in KINDS, self.kind
        assert self.init in (None, *INIT_MODES), self.init
        assert (self.parent is None) == (self.init is None), self.name
        assert set(self.losses) <= set(LOSS_TERMS), self.losses

    @property
    def trainable(self) -> bool:
        return self.architecture is not None

    @property
    def uses_reference(self) -> bool:
        return self.kind == REFERENCE_BASED


_TEXTURE_GAN = ("reconstruction", "perceptual", "texture", "adversarial")
#: Keys of the ``arch`` section that SRResNet and SRNTT take.
_SRRESNET_KEYS = ("n_blocks", "n_feats", "residual_over_bicubic", "res_scale")
_SRNTT_KEYS = ("n_blocks", "n_feats", "n_blocks_transfer", "residual_over_bicubic", "res_scale")

#: Every model, in the order tables and figures list them.
MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("bicubic", INTERPOLATION, "Bicubic"),
        ModelSpec("srresnet", SINGLE_IMAGE, "SRResNet", "refsr.models.srresnet:SRResNet",
                  arch_keys=_SRRESNET_KEYS, losses=("reconstruction",)),
        ModelSpec("srgan", SINGLE_IMAGE, "SRGAN", "refsr.models.srresnet:SRResNet",
                  arch_keys=_SRRESNET_KEYS, parent="srresnet", init="full",
                  losses=("reconstruction", "perceptual", "adversarial")),
        ModelSpec("srntt_l2", REFERENCE_BASED, "SRNTT-\u21132", "refsr.models.srntt:SRNTT",
                  arch_keys=_SRNTT_KEYS, parent="srresnet", init="content_extractor", losses=("reconstruction",),
                  correspondence=True),
        ModelSpec("srntt", REFERENCE_BASED, "SRNTT", "refsr.models.srntt:SRNTT",
                  arch_keys=_SRNTT_KEYS, parent="srntt_l2", init="full", losses=_TEXTURE_GAN, correspondence=True),
    )
}


def get(name: str, where: str = "model") -> ModelSpec:
    """The spec of ``name``; a one-line error naming ``where`` for an unknown name."""
    if name not in MODELS:
        raise RefsrError(where, f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def names(kind: str | None = None) -> list[str]:
    """Model names in registry order, optionally of one kind."""
    return [n for n, s in MODELS.items() if kind is None or s.kind == kind]


def trainable() -> list[str]:
    """Models that have weights to train, in registry order (parents before children)."""
    return [n for n, s in MODELS.items() if s.trainable]


def ancestors(name: str) -> list[str]:
    """The training chain above ``name``, nearest parent first."""
    out, spec = [], get(name)
    while spec.parent is not None:
        out.append(spec.parent)
        spec = get(spec.parent)
    return out


def with_ancestors(models: Iterable[str], given: Iterable[str] = ()) -> list[str]:
    """``models`` and every model they are trained from, in registry order. A model in
    ``given`` (its weights come from elsewhere, e.g. released weights) needs no parent."""
    given, wanted = set(given), set()
    for m in models:
        wanted.add(m)
        while m not in given and get(m).parent is not None:
            m = get(m).parent
            wanted.add(m)
    return [n for n in MODELS if n in wanted]


def leaves(models: Iterable[str], kind: str) -> list[str]:
    """Of ``models``, those of ``kind`` that no other listed model is trained from."""
    models = list(models)
    parents = {MODELS[m].parent for m in models if m in MODELS}
    return [m for m in MODELS if m in models and MODELS[m].kind == kind and m not in parents]


def arch_config(name: str, config: Mapping) -> dict:
    """The architecture keys of model ``name`` from a validated pipeline config."""
    spec = get(name)
    node = config
    for part in spec.arch_section.split("."):
        node = node[part]
    return {k: node[k] for k in spec.arch_keys}


def check_config(config: Mapping) -> None:
    """Model names in the config must be registered (the schema cannot list them)."""
    for i, name in enumerate(config.get("models", [])):
        get(name, where=f"config key models.{i}")
    for name in config.get("pretrained", {}):
        if not get(name, where=f"config key pretrained.{name}").trainable:
            raise RefsrError(f"config key pretrained.{name}", "has no weights to import")
    for name in config.get("train", {}).get("gpus", {}):
        if not get(name, where=f"config key train.gpus.{name}").trainable:
            raise RefsrError(f"config key train.gpus.{name}", "has nothing to train")

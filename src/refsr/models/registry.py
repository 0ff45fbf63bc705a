"""The model registry: the one place a method is declared.

Every other part of refsr reads this table: the Snakemake rules (which models train, what
each training job needs), the trainer (what a model starts from and which losses it uses),
inference (whether a model takes references), the tables and figures (labels, which rows
ignore the reference) and the benchmarks. It imports nothing heavy (no torch), so the
workflow can read it while it builds the DAG.

A model can have several *recipes*: ways to build and train it (``refsr``: this project's
CPU-friendly variant; ``official``: the released code point by point, where implemented).
Each recipe is its own :class:`ModelSpec` entry with the same name; the config key
``recipe`` picks one for every model that has it (the others keep their only/default one),
and tables and checkpoints name the recipe. Kind, label and whether training needs
correspondences are the model's, the same in every recipe; the parent a model starts from can
be its recipe's (TTSR: the released ``ttsr`` trains from scratch, recipe ``refsr``'s ``ttsr``
starts from ``ttsr_rec``), so the training chain of a model is read in the config's recipe
(:func:`ancestors`, :func:`with_ancestors`, :func:`to_train` with a config).

Adding a method: one architecture file in ``refsr/models/``, one :class:`ModelSpec` entry
below, and its config section (its iterations under ``train.iterations`` in the schema and
the configs; its sizes in the section named by ``arch_section``). See
``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from refsr.core.config import lookup
from refsr.core.errors import RefsrError
from refsr.data.checks import check_training_data

#: What a model is, as the tables and inference need to know.
INTERPOLATION, SINGLE_IMAGE, REFERENCE_BASED = "interpolation", "single-image", "reference-based"
KINDS = (INTERPOLATION, SINGLE_IMAGE, REFERENCE_BASED)
#: What a model takes from its parent: every weight, or only the content extractor.
INIT_MODES = ("full", "content_extractor")
#: Loss terms a model can train with (see :mod:`refsr.training.losses`).
LOSS_TERMS = ("reconstruction", "perceptual", "texture", "transferal", "adversarial")
#: Where a reference-based model's textures come from: VGG19 maps swapped by refsr's matching
#: before the network runs (SRNTT), the network's own learned extractor and search (TTSR), or a
#: released network run end to end by its released test path (its own preprocessing, search and
#: transfer: C2-Matching, MASA-SR), through the network's ``super_resolve(lr, refs, max_mb)``.
TEXTURES = ("swapped", "learned", "released")


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
    * ``loss_section``: the config section holding its loss weights (``loss``, or its own).
    * ``textures``: for a reference-based model, :data:`TEXTURES`.
    * ``released_only``: its weights come only from the authors' release (``pretrained`` with
      its importer); the pipeline does not train it (no trainer here yet).
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
    recipe: str = "refsr"
    loss_section: str = "loss"
    textures: str = "swapped"
    released_only: bool = False

    def __post_init__(self) -> None:
        assert self.textures in TEXTURES, self.textures
        assert self.kind in KINDS, self.kind
        assert self.init in (None, *INIT_MODES), self.init
        assert (self.parent is None) == (self.init is None), self.name
        assert set(self.losses) <= set(LOSS_TERMS), self.losses

    @property
    def has_weights(self) -> bool:
        """It has a network (everything but interpolation)."""
        return self.architecture is not None

    @property
    def trainable(self) -> bool:
        """The pipeline can train it (a network that is not released-weights-only)."""
        return self.has_weights and not self.released_only

    @property
    def uses_reference(self) -> bool:
        return self.kind == REFERENCE_BASED


_TEXTURE_GAN = ("reconstruction", "perceptual", "texture", "adversarial")
#: Keys of the ``arch`` section that SRResNet and SRNTT take.
_SRRESNET_KEYS = ("n_blocks", "n_feats", "residual_over_bicubic", "res_scale")
_SRNTT_KEYS = ("n_blocks", "n_feats", "n_blocks_transfer", "residual_over_bicubic", "res_scale")
#: The official recipe's networks take only sizes (no residual over bicubic, no branch scaling).
_OFFICIAL_SISR_KEYS = ("n_blocks", "n_feats")
_OFFICIAL_SRNTT_KEYS = ("n_blocks", "n_feats", "n_blocks_transfer")
_OFFICIAL_TRAINER = "refsr.training.official:OfficialTrainer"
#: TTSR (researchmm/TTSR): its sizes and losses in the config's ``ttsr`` section, its own loop.
_TTSR = dict(arch_section="ttsr.arch", arch_keys=("n_blocks", "n_feats", "res_scale"),
             trainer="refsr.training.ttsr:TTSRTrainer", loss_section="ttsr.loss", textures="learned")
_TTSR_LOSSES = ("reconstruction", "perceptual", "transferal", "adversarial")
_TTSR_OFFICIAL = dict(architecture="refsr.models.ttsr:TTSR", recipe="official", **_TTSR)
#: TTSR's recipe refsr (docs/methods/ttsr.md, "Recipe refsr"): the released network, search,
#: transfer and losses, with three differences that make it trainable in CPU minutes: (1) it
#: predicts a residual over the bicubic upsampling of its LR, its last conv starting at zero
#: (refsr.models.ttsr.TTSRResidual: untrained, it is bicubic); (2) ttsr starts from the trained
#: ttsr_rec (every weight: ttsr_rec is the reconstruction warm-up, so ttsr.init_iterations is not
#: used) instead of from scratch with reconstruction-only first epochs; (3) the main network's
#: learning rate ttsr.refsr.lr_start decays to ttsr.refsr.lr_end over the run (cosine) instead
#: of train.lr constant (refsr.training.ttsr.TTSRTrainer).
_TTSR_REFSR = dict(architecture="refsr.models.ttsr:TTSRResidual", recipe="refsr", **_TTSR)

#: C2-Matching as released: imported, never trained here (sizes from the released files).
_C2 = dict(architecture="refsr.models.c2matching:C2Matching", arch_keys=("ngf", "n_blocks", "groups"),
           recipe="official", textures="released", released_only=True)
#: MASA-SR as released: imported, never trained here (its sizes are fixed).
_MASA = dict(architecture="refsr.models.masa:MASA", arch_keys=(), recipe="official", textures="released",
             released_only=True)

#: Every (model, recipe), in the order tables and figures list the models; a model's first
#: entry is its default recipe.
_ENTRIES: tuple[ModelSpec, ...] = (
        ModelSpec("bicubic", INTERPOLATION, "Bicubic", recipe=""),
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
        # Recipe official: the released SRNTT (ZZUTK/SRNTT) point by point, see
        # refsr.models.srntt_official and refsr.training.official.
        ModelSpec("srresnet", SINGLE_IMAGE, "SRResNet", "refsr.models.srntt_official:SRResNetOfficial",
                  arch_keys=_OFFICIAL_SISR_KEYS, losses=("reconstruction",), trainer=_OFFICIAL_TRAINER,
                  recipe="official"),
        ModelSpec("srgan", SINGLE_IMAGE, "SRGAN", "refsr.models.srntt_official:SRResNetOfficial",
                  arch_keys=_OFFICIAL_SISR_KEYS, parent="srresnet", init="full",
                  losses=("reconstruction", "perceptual", "adversarial"), trainer=_OFFICIAL_TRAINER,
                  recipe="official"),
        ModelSpec("srntt_l2", REFERENCE_BASED, "SRNTT-\u21132", "refsr.models.srntt_official:SRNTTOfficial",
                  arch_keys=_OFFICIAL_SRNTT_KEYS, parent="srresnet", init="content_extractor",
                  losses=("reconstruction",), correspondence=True, trainer=_OFFICIAL_TRAINER, recipe="official"),
        ModelSpec("srntt", REFERENCE_BASED, "SRNTT", "refsr.models.srntt_official:SRNTTOfficial",
                  arch_keys=_OFFICIAL_SRNTT_KEYS, parent="srntt_l2", init="full", losses=_TEXTURE_GAN,
                  correspondence=True, trainer=_OFFICIAL_TRAINER, recipe="official"),
        # TTSR and TTSR-rec, trained from scratch as released (TTSR's first iterations are
        # reconstruction-only: ttsr.init_iterations), see refsr.models.ttsr, refsr.training.ttsr.
        # Official first: their default recipe (released weights, refsr import-weights).
        ModelSpec("ttsr_rec", REFERENCE_BASED, "TTSR-rec", losses=("reconstruction",), **_TTSR_OFFICIAL),
        ModelSpec("ttsr", REFERENCE_BASED, "TTSR", losses=_TTSR_LOSSES, **_TTSR_OFFICIAL),
        # Recipe refsr (_TTSR_REFSR): residual over bicubic, ttsr from ttsr_rec, a decaying rate.
        ModelSpec("ttsr_rec", REFERENCE_BASED, "TTSR-rec", losses=("reconstruction",), **_TTSR_REFSR),
        ModelSpec("ttsr", REFERENCE_BASED, "TTSR", losses=_TTSR_LOSSES, parent="ttsr_rec", init="full",
                  **_TTSR_REFSR),
        # C2-Matching (yumingj/C2-Matching) from its released weights only, run by its released test
        # path (refsr.models.c2matching): c2matching_rec = the MSE-trained restoration network.
        ModelSpec("c2matching_rec", REFERENCE_BASED, "C2-Matching-rec", losses=("reconstruction",), **_C2),
        ModelSpec("c2matching", REFERENCE_BASED, "C2-Matching",
                  losses=("reconstruction", "perceptual", "adversarial"), **_C2),
        # MASA-SR (dvlab-research/MASA-SR) from its released weights only, run by its released test
        # path (refsr.models.masa): masa_rec = the reconstruction-only network.
        ModelSpec("masa_rec", REFERENCE_BASED, "MASA-SR-rec", losses=("reconstruction",), **_MASA),
        ModelSpec("masa", REFERENCE_BASED, "MASA-SR", losses=("reconstruction", "perceptual", "adversarial"),
                  **_MASA),
)

#: model name -> recipe -> spec.
RECIPES: dict[str, dict[str, ModelSpec]] = {}
for _spec in _ENTRIES:
    RECIPES.setdefault(_spec.name, {})[_spec.recipe] = _spec
_SHARED = ("kind", "label", "correspondence", "textures")
for _name, _variants in RECIPES.items():
    _first = next(iter(_variants.values()))
    assert all(getattr(v, f) == getattr(_first, f) for v in _variants.values() for f in _SHARED), _name
#: model name -> its default recipe's spec, in registry order.
MODELS: dict[str, ModelSpec] = {name: next(iter(v.values())) for name, v in RECIPES.items()}


def get(name: str, where: str = "model", recipe: str | None = None) -> ModelSpec:
    """The spec of ``name`` in ``recipe`` (``None``: its default recipe); a one-line error
    naming ``where`` for an unknown name or recipe."""
    if name not in MODELS:
        raise RefsrError(where, f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if recipe is None:
        return MODELS[name]
    if recipe not in RECIPES[name]:
        raise RefsrError(where, f"{name} has no recipe {recipe!r} (it has {', '.join(RECIPES[name])})")
    return RECIPES[name][recipe]


def recipe_of(name: str, config: Mapping) -> str:
    """The recipe model ``name`` runs with under a validated config: the config's ``recipe``
    when the model has it, else the model's default (shown in every table row)."""
    wanted = config["recipe"]
    return wanted if wanted in RECIPES[get(name).name] else get(name).recipe


def row_label(name: str, recipe: str) -> str:
    """How tables name a model's row: ``srntt (official)``; a model without recipes by name."""
    return f"{name} ({recipe})" if recipe else name


def spec_for(name: str, config: Mapping) -> ModelSpec:
    """The spec of ``name`` in the recipe the config gives it (:func:`recipe_of`)."""
    return get(name, recipe=recipe_of(name, config))


def names(kind: str | None = None) -> list[str]:
    """Model names in registry order, optionally of one kind."""
    return [n for n, s in MODELS.items() if kind is None or s.kind == kind]


def trainable() -> list[str]:
    """Models that have weights to train, in registry order (parents before children)."""
    return [n for n, s in MODELS.items() if s.trainable]


def parent_of(name: str, config: Mapping | None = None) -> str | None:
    """The model ``name`` starts from in the recipe ``config`` gives it (``None``: its default
    recipe's parent)."""
    return (get(name) if config is None else spec_for(name, config)).parent


def ancestors(name: str, config: Mapping | None = None) -> list[str]:
    """The training chain above ``name`` (in ``config``'s recipes), nearest parent first."""
    out, parent = [], parent_of(name, config)
    while parent is not None:
        out.append(parent)
        parent = parent_of(parent, config)
    return out


def with_ancestors(models: Iterable[str], given: Iterable[str] = (), config: Mapping | None = None) -> list[str]:
    """``models`` and every model they are trained from (in ``config``'s recipes), in registry
    order. A model in ``given`` (its weights come from elsewhere, e.g. released weights) needs
    no parent."""
    given, wanted = set(given), set()
    for m in models:
        wanted.add(m)
        while m not in given and parent_of(m, config) is not None:
            m = parent_of(m, config)
            wanted.add(m)
    return [n for n in MODELS if n in wanted]


def leaves(models: Iterable[str], kind: str, config: Mapping | None = None) -> list[str]:
    """Of ``models``, those of ``kind`` that no other listed model is trained from (in
    ``config``'s recipes)."""
    models = list(models)
    parents = {parent_of(m, config) for m in models if m in MODELS}
    return [m for m in MODELS if m in models and MODELS[m].kind == kind and m not in parents]


def trained_here(name: str, config: Mapping) -> bool:
    """Whether the pipeline trains ``name`` under ``config``: it has weights and they are not
    imported (config ``pretrained``). The one "trained here" predicate."""
    return get(name).trainable and name not in config.get("pretrained", {})


def to_train(config: Mapping) -> list[str]:
    """The models the pipeline trains, in registry order (parents first): the listed models
    and every model they start from, less those whose weights are imported."""
    given = config.get("pretrained", {})
    return [m for m in with_ancestors(config["models"], given=given, config=config) if trained_here(m, config)]


def correspondence_recipe(config: Mapping) -> str:
    """The recipe of the models trained from the correspondence cache (one cache serves them
    all, so its VGG19 and what it matches follow their common recipe); ``refsr`` if none."""
    recipes = {recipe_of(m, config) for m in to_train(config) if get(m).correspondence}
    if len(recipes) > 1:
        raise RefsrError("config key recipe", "the models trained from the correspondence cache run "
                                              f"different recipes ({', '.join(sorted(recipes))})")
    return next(iter(recipes), "refsr")


def arch_config(name: str, config: Mapping) -> dict:
    """The architecture keys of model ``name`` (in its recipe) from a validated pipeline config."""
    spec = spec_for(name, config)
    node = lookup(config, spec.arch_section)
    return {k: (list(node[k]) if isinstance(node[k], (list, tuple)) else node[k]) for k in spec.arch_keys}


def check_config(config: Mapping) -> None:
    """Model and recipe names in the config must be registered (the schema cannot list them)."""
    known = sorted({r for v in RECIPES.values() for r in v if r})
    if config.get("recipe", "refsr") not in known:
        raise RefsrError("config key recipe", f"unknown recipe {config.get('recipe')!r}; choose one of {', '.join(known)}")
    for i, name in enumerate(config.get("models", [])):
        get(name, where=f"config key models.{i}")
    sisr = config.get("reference", {}).get("sisr_model")
    if sisr is not None and get(sisr, where="config key reference.sisr_model").kind != SINGLE_IMAGE:
        raise RefsrError("config key reference.sisr_model", f"{sisr} is not a single-image model")
    for name in config.get("pretrained", {}):
        if not get(name, where=f"config key pretrained.{name}").has_weights:
            raise RefsrError(f"config key pretrained.{name}", "has no weights to import")
    for i, name in enumerate(config.get("models", [])):
        if get(name).released_only and name not in config.get("pretrained", {}):
            raise RefsrError(f"config key models.{i}", f"{name} runs from its authors' released weights only "
                                                      f"(refsr does not train it): add pretrained.{name} with "
                                                      "its importer's source and the released files' path")
    for name in config.get("train", {}).get("gpus", {}):
        if not get(name, where=f"config key train.gpus.{name}").trainable:
            raise RefsrError(f"config key train.gpus.{name}", "has nothing to train")
    if "models" in config and "recipe" in config:
        correspondence_recipe(config)
    if "train_dataset" in config and "datasets" in config:
        check_training_data(config, to_train(config))

"""One job spec per rule: the params that change a job's outputs, and the settings that do not.

Snakemake re-runs a job when its params change (it compares their representations), so every
rule's params come from one function here, built from the validated config and passed through
:func:`~refsr.core.config.canonical` (a config re-saved in another key order re-runs nothing).
Each function returns exactly what changes that job's outputs; the keys that change no output
(:data:`SETTINGS`: the matching's memory budget, how often training logs and saves its state)
are never params: a stage reads them with :func:`settings` (through
:func:`refsr.stages.runner.settings`), so changing them re-runs nothing.

Stages read their params and those settings only, never the raw config. Params that feed a
:class:`~refsr.inference.resolver.SuperResolver` are config-shaped (the sections it reads, pruned
to the keys that matter: the reference fit's limits only when aligning, ``max_flow`` only with
the flow, ``sisr_model`` only when matching in the SR domain), so
:meth:`SuperResolver.from_config` builds it from them alone.

No torch here: the workflow imports this module while it builds the DAG.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from refsr.core.config import canonical, digest
from refsr.evaluation import external, presets, variants
from refsr.evaluation.protocol import protocol_from_config
from refsr.features.weights import needed as weights_needed
from refsr.models import registry
from refsr.training.config import train_params

#: Config keys (dotted) that change no output: never params, read through :func:`settings`.
SETTINGS = ("matching.max_mb", "train.log_every", "train.checkpoint_every")
#: Config keys that change no output and are not in the captions' config hash: the settings,
#: and the GPUs a training job asks for (a resource, not a param).
UNTRACKED = (*SETTINGS, "train.gpus")


def settings(config: Mapping) -> dict[str, Any]:
    """The :data:`SETTINGS` of a validated config, by their last key (``max_mb``, ...)."""
    return {"max_mb": float(config["matching"]["max_mb"]),
            "log_every": int(config["train"]["log_every"]),
            "checkpoint_every": int(config["train"]["checkpoint_every"])}


def tracked(config: Mapping) -> dict:
    """The config without its :data:`UNTRACKED` keys: what the table captions' hash covers."""
    out = copy.deepcopy(dict(config))
    for dotted in UNTRACKED:
        *parents, last = dotted.split(".")
        node = out
        for part in parents:
            node = node[part]
        node.pop(last, None)
    return canonical(out)


def subset(config: Mapping, *keys: str) -> dict:
    """Only ``keys`` of the config (top-level), canonical."""
    return canonical({key: config[key] for key in keys})


# --------------------------------------------------------------------------- data stage

def build_dataset(config: Mapping, dataset: str) -> dict:
    return canonical({"dataset": config["datasets"][dataset], "scale": config["scale"]})


def degrade(config: Mapping, test: str | None = None, train: str | None = None) -> dict:
    """The LR of the main run, or of an ablation's ``test`` / ``train`` degradation."""
    degradation = dict(config["degradation"])
    degradation.update({k: v for k, v in (("test", test), ("train", train)) if v is not None})
    return canonical({"scale": config["scale"], "resize": config["resize"], "degradation": degradation})


def tiers(config: Mapping) -> dict:
    return subset(config, "tiers", "scale", "resize", "vgg19_weights")


# --------------------------------------------------------------------------- training

def correspondence(config: Mapping) -> dict:
    """The VGG19 and, for recipe official, what is matched (``official.training_maps``; the
    untrained network's sizes and seed when released)."""
    recipe = registry.correspondence_recipe(config)
    out = {"recipe": recipe, "official": None, "arch": None, "seed": None,
           "scale": config["scale"], "resize": config["resize"], "vgg19_weights": config["vgg19_weights"]}
    if recipe == "official":
        official = config["official"]
        out["official"] = {k: official[k] for k in ("vgg19_mat", "training_maps")}
        if official["training_maps"] == "released":
            out["arch"] = {k: config["arch"][k] for k in ("n_blocks", "n_feats")}
            out["seed"] = config["seed"]
    return canonical(out)


def train(config: Mapping, model: str) -> dict:
    """What determines ``model``'s weights (:func:`refsr.training.config.train_params`)."""
    return canonical({"train": train_params(model, config), "scale": config["scale"],
                      "vgg19_weights": config["vgg19_weights"]})


def import_weights(config: Mapping, model: str) -> dict:
    return canonical({"source": config["pretrained"][model]["source"],
                      "recipe": registry.recipe_of(model, config)})


def download_weights(config: Mapping) -> dict:
    return {"names": weights_needed(config)}


# --------------------------------------------------------------------------- inference

def reference(config: Mapping, model: str | None, align: str | None = None,
              degrade: str | None = None) -> dict | None:
    """The ``reference`` section as ``model`` runs it with ``align`` / ``degrade`` (unset: the
    main run's), pruned to what changes its outputs: nothing for a model without references;
    the fit's limits and local features only when it aligns, ``max_flow`` only with the flow,
    ``sisr_model`` only with sr_model. ``model`` None: a model not known yet (``refsr sr``
    learns it from the checkpoint), run as a reference-based one with the section's own align."""
    ref = config["reference"]
    if model is None:
        main = {"align": ref["align"], "degrade": ref["degrade"]}
    elif not registry.get(model).uses_reference:
        return None
    else:
        main = variants.main_settings(config, model)
    align, degrade = align or main["align"], degrade or main["degrade"]
    out = {"align": align, "degrade": degrade}
    if align != "none":
        out.update(min_inliers=ref["min_inliers"], max_scale=ref["max_scale"])
        out["features"] = {k: config["tiers"][k] for k in ("local_features", "ratio", "ransac_px")}
    if align == "homography_then_flow":
        out["max_flow"] = ref["max_flow"]
    if degrade == "sr_model":
        out["sisr_model"] = ref["sisr_model"]
    return out


def resolver(config: Mapping, model: str | None, align: str | None = None, degrade: str | None = None) -> dict:
    """What determines ``model``'s SR images: the config-shaped input of
    :meth:`refsr.inference.resolver.SuperResolver.from_config` (model, scale, resize, device,
    VGG19 files, inference tiling, matching without its memory budget, :func:`reference`).
    A model without references gets no matching, VGG19 or reference keys (``None``): changing
    them re-runs only the models that use them. ``model`` None: whatever model the checkpoint
    holds (``refsr sr``), treated as reference-based."""
    uses_reference = model is None or registry.get(model).uses_reference
    if model is None:
        official_vgg = True  # used only if the checkpoint turns out to be official SRNTT
    else:
        spec = registry.spec_for(model, config)
        official_vgg = spec.recipe == "official" and spec.uses_reference and spec.textures == "swapped"
    matching = {k: v for k, v in config["matching"].items() if k != "max_mb"}
    return canonical({
        "model": model,
        **subset(config, "scale", "resize", "device", "inference"),
        "vgg19_weights": config["vgg19_weights"] if uses_reference else None,
        "reference": reference(config, model, align, degrade),
        "matching": matching if uses_reference else None,
        "vgg19_mat": config["official"]["vgg19_mat"] if official_vgg else None,
    })


def infer(config: Mapping, model: str) -> dict:
    return canonical({**resolver(config, model), "levels": config["evaluation"]["levels"]})


# --------------------------------------------------------------------------- evaluation and report

def evaluate(config: Mapping, model: str | None = None) -> dict:
    """The protocol and the evaluation section; for an external method (config ``external``)
    its levels replace ``evaluation.levels`` (the levels its folder has images for)."""
    ev = dict(config["evaluation"])
    if model in (config.get("external") or {}):
        ev["levels"] = external.entries(config)[model].levels_in(ev["levels"])
    return canonical({**subset(config, "scale", "resize", "device"), "evaluation": ev,
                      "protocol_text": protocol_from_config(config).describe()})


def evaluate_presets(config: Mapping, model: str) -> dict:
    """The levels of :data:`~refsr.evaluation.presets.PRESET_LEVELS` the method is evaluated at,
    and what every preset's protocol takes from the config (scale, LR resize)."""
    levels = evaluate(config, model)["evaluation"]["levels"]
    return canonical({**subset(config, "scale", "resize"), "levels": presets.preset_levels(levels)})


def external_outputs(config: Mapping, external_name: str) -> dict:
    """An external method's entry and the levels it is checked and copied at."""
    ext = external.entries(config)[external_name]
    return canonical({"external": config["external"][external_name], "scale": config["scale"],
                      "levels": ext.levels_in(config["evaluation"]["levels"])})


def tables(config: Mapping) -> dict:
    """The keys the tables and their captions read, the paper dataset, and the hash of the
    config (less :data:`SETTINGS`) that the captions carry; not the whole config."""
    paper = next((ds for ds in config["eval_datasets"] if config["datasets"][ds]["kind"] == "cufed5"), None)
    return canonical({
        **subset(config, "scale", "resize", "evaluation", "models", "recipe", "vgg19_weights", "external"),
        "methods": list(config["models"]) + list(config["external"]),
        "origins": origins(config),
        "benchmark": benchmark_made(config),
        "official": {"vgg19_mat": config["official"]["vgg19_mat"]},
        "loss": {"perceptual_layer": config["loss"]["perceptual_layer"]},
        "ttsr": {"loss": {"perceptual_layer": config["ttsr"]["loss"]["perceptual_layer"]}},
        "datasets": list(config["eval_datasets"]),
        "paper_dataset": paper,
        "config_hash": digest(tracked(config)),
        "protocol_text": protocol_from_config(config).describe(),
    })


def benchmark_made(config: Mapping) -> bool:
    """Whether the tables include the benchmark table: the run evaluates a method whose weights
    or images come from elsewhere (imported released weights, an external method)."""
    return bool(config["external"]) or any(m in config["pretrained"] for m in config["models"])


def origins(config: Mapping) -> dict[str, str]:
    """Where each evaluated method's SR images come from, for the benchmark table: trained here,
    released weights (and their importer), or external images (and their source)."""
    out = {}
    for m in config["models"]:
        if not registry.get(m).has_weights:
            out[m] = "no weights (interpolation)"
        elif m in config["pretrained"]:
            out[m] = f"imported weights ({config['pretrained'][m]['source']})"
        else:
            out[m] = "trained here"
    for name, ext in external.entries(config).items():
        out[name] = f"external images ({ext.source or ext.path})"
    return out


def learned_texture_models(config: Mapping) -> list[str]:
    """The listed models with their own texture extractor and search (TTSR): the
    correspondence figure shows their hard attention beside SRNTT's matching."""
    return [m for m in config["models"]
            if registry.get(m).uses_reference and registry.get(m).textures == "learned"]


def _untiled(spec: dict) -> dict:
    return {**spec, "inference": {**spec["inference"], "tile": 0, "pad": 0}}


def figures(config: Mapping) -> dict:
    """The figures' sections, and the inference job spec of each TTSR-like model (its hard
    attention is drawn as its inference computes it, with tiling off)."""
    learned = learned_texture_models(config)
    return canonical({
        **subset(config, "scale", "resize", "vgg19_weights", "evaluation", "models"),
        "learned": learned,  # in the order of the rule's input ``learned`` (their checkpoints)
        "resolvers": {m: _untiled(resolver(config, m)) for m in learned},
        "protocol_text": protocol_from_config(config).describe(),
    })


# --------------------------------------------------------------------------- ablations

def ablation_variant(config: Mapping, name: str) -> dict:
    """A variant's model's resolver under the variant's settings, the evaluation section and
    the variant's settings (not the other variants, nor its baseline)."""
    v = variants.variant_of(config, name)
    s = variants.settings(config, v)
    return canonical({**resolver(config, v["model"], s["align"], s["degrade"]),
                      **subset(config, "evaluation"),
                      "variant": {"model": v["model"], **s},
                      "protocol_text": protocol_from_config(config).describe()})


def ablation(config: Mapping) -> dict:
    cfg = subset(config, "evaluation", "ablations", "reference", "models", "degradation", "pretrained")
    return canonical({**cfg, "protocol_text": protocol_from_config(config).describe()})


def match_study(config: Mapping, dataset: str) -> dict:
    return canonical({
        **subset(config, "scale", "resize", "device", "vgg19_weights", "match_study"),
        "dataset": config["datasets"][dataset],
        "reference": {k: config["reference"][k] for k in ("min_inliers", "max_scale")},
        "features": {k: config["tiers"][k] for k in ("local_features", "ratio", "ransac_px")},
    })

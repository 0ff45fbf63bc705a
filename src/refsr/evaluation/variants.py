"""Ablation variants (config ``ablations``): what each one runs, against what, and what it changes.

A variant is one model run with some settings changed from the main run. Its *settings* are the
four the ablations vary: ``align`` (reference.align, or the model's reference.per_model entry),
``degrade`` (reference.degrade: what the matching compares), ``test`` (degradation.test: the test
LR) and ``train`` (degradation.train: the LR the model, and every model it starts from, trained
on). Its *baseline* is the model's main run, or another variant of the same model named by
``baseline`` (e.g. trained on realistic LR against trained on bicubic LR, both tested on
realistic LR). A variant must differ from its baseline in at least one setting that matters for
its model (align and degrade only for reference-based models; train only for models trained
here). The workflow (:class:`refsr.pipeline.plan.Plan`) and the ablation stage both check a config
with :func:`check_variants`; the table's caption says :func:`change_text`.

No torch here: the workflow imports this module while it builds the DAG.
"""

from __future__ import annotations

from collections.abc import Mapping

from refsr.core.errors import RefsrError
from refsr.models import registry

#: The settings a variant can change, by variant key.
KEYS = {"align": "align", "degrade": "degrade", "test": "test_degradation", "train": "train_degradation"}

_WHAT = {
    "align": "reference.align",
    "degrade": "reference.degrade (what the matching compares)",
    "test": "test LR (degradation.test)",
    "train": "training LR (degradation.train; the model and every model it starts from retrained)",
}


def main_settings(config: Mapping, model: str) -> dict[str, str]:
    """The main run's settings for ``model``."""
    ref, deg = config["reference"], config["degradation"]
    return {"align": ref["per_model"].get(model, ref["align"]), "degrade": ref["degrade"],
            "test": deg["test"], "train": deg["train"]}


def variant_of(config: Mapping, name: str) -> dict:
    for v in config["ablations"]:
        if v["name"] == name:
            return v
    raise RefsrError("ablations", f"no variant named {name!r}")


def settings(config: Mapping, v: Mapping) -> dict[str, str]:
    """The settings the variant ``v`` runs with: the main run's, with the variant's keys."""
    out = main_settings(config, v["model"])
    out.update({s: v[key] for s, key in KEYS.items() if key in v})
    return out


def baseline_settings(config: Mapping, v: Mapping) -> dict[str, str]:
    """The settings of what ``v`` is compared with: its baseline variant, or the main run."""
    if v.get("baseline"):
        return settings(config, variant_of(config, v["baseline"]))
    return main_settings(config, v["model"])


def changes(config: Mapping, v: Mapping) -> dict[str, tuple[str, str]]:
    """Setting -> (baseline's, variant's) for every setting that differs and matters for the model."""
    relevant = {"test"} | ({"align", "degrade"} if registry.get(v["model"]).uses_reference else set()) | (
        {"train"} if registry.trained_here(v["model"], config) else set())
    a, b = baseline_settings(config, v), settings(config, v)
    return {s: (a[s], b[s]) for s in KEYS if s in relevant and a[s] != b[s]}


def change_text(config: Mapping, v: Mapping) -> str:
    """What the variant changes against its baseline, for captions."""
    parts = []
    for s, (a, b) in changes(config, v).items():
        extra = f" with {config['reference']['sisr_model']}" if s == "degrade" and b == "sr_model" else ""
        parts.append(f"{_WHAT[s]}: {a} → {b}{extra}")
    against = f"against variant {v['baseline']}" if v.get("baseline") else "against the main run"
    return "; ".join(parts) + f" ({against})"


def check_variants(config: Mapping) -> None:
    """Every variant names a model that is run, once, has a valid baseline and changes something
    that matters for its model (one-line :class:`RefsrError` naming the variant otherwise)."""
    variants = config["ablations"]
    names = [v["name"] for v in variants]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RefsrError("ablations", f"variant names repeat: {', '.join(dup)}")
    for v in variants:
        where = f"variant {v['name']!r}"
        if v["model"] not in config["models"]:
            raise RefsrError("ablations", f"{where}: model {v['model']!r} is not in models")
        spec = registry.get(v["model"])
        for key in ("align", "degrade"):
            if key in v and not spec.uses_reference:
                raise RefsrError("ablations", f"{where}: {v['model']} takes no reference, "
                                              f"so its reference.{key} changes nothing")
        if "train_degradation" in v and not registry.trained_here(v["model"], config):
            raise RefsrError("ablations", f"{where}: {v['model']} is not trained here, "
                                          "so train_degradation changes nothing")
        base = v.get("baseline")
        if base is not None:
            if base == v["name"] or base not in names:
                raise RefsrError("ablations", f"{where}: baseline {base!r} is not another variant")
            if variant_of(config, base)["model"] != v["model"]:
                raise RefsrError("ablations", f"{where}: baseline {base!r} runs another model")
        if not changes(config, v):
            raise RefsrError("ablations", f"{where} runs as its baseline does "
                                          "(align, degrade, test_degradation, train_degradation)")

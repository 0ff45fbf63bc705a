"""The pipeline configuration: validated once against the JSON schema, defaults only from it.

``config.schema.yaml`` (package data beside this module; the workflow's
``workflow/schemas/config.schema.yaml`` is a link to it) is the single source of every config
key, its meaning and its default. :func:`validate` checks a config against it (one line naming the
offending key), fills in every default and returns the complete config; code downstream
receives those validated values and states no defaults of its own. :func:`defaults` gives
the schema's defaults of one section for callers outside the pipeline (the ``refsr`` CLI,
the benchmarks).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from refsr.core.errors import RefsrError

#: The schema, shipped inside the package (a wheel or a non-editable install carries it).
SCHEMA_PATH = Path(__file__).resolve().with_name("config.schema.yaml")


@functools.cache
def schema(path: str | os.PathLike = SCHEMA_PATH) -> dict:
    """The config schema (parsed once per process)."""
    path = Path(path)
    if not path.is_file():
        raise RefsrError(path, "config schema not found (a broken installation of refsr?)")
    with open(path) as fh:
        return yaml.safe_load(fh)


def _filling_validator():
    """A Draft 2020-12 validator that inserts each property's ``default`` before descending."""
    base = jsonschema.Draft202012Validator
    check_properties = base.VALIDATORS["properties"]

    def properties(validator, props, instance, sub):
        if validator.is_type(instance, "object"):
            for name, spec in props.items():
                if isinstance(spec, Mapping) and "default" in spec and name not in instance:
                    instance[name] = copy.deepcopy(spec["default"])
        yield from check_properties(validator, props, instance, sub)

    return jsonschema.validators.extend(base, {"properties": properties})


def _key(path) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "(top level)"


def exactly_one_of(keys, present) -> str:
    """The problem of a config section that needs exactly one of ``keys`` (``present``: those
    set), e.g. ``give exactly one of refs_dir and pairs_csv (neither is set)``; the schema
    check and the dataset builders word it the same."""
    keys, present = list(keys), list(present)
    names = " and ".join(keys) if len(keys) == 2 else ", ".join(keys)
    state = "neither is set" if not present else f"{' and '.join(present)} are all set"
    if len(present) == 2 and len(keys) == 2:
        state = "both are set"
    return f"give exactly one of {names} ({state})"


def _required_problem(error) -> tuple[str, str]:
    """(key, problem) of a missing required key: names the key and what it takes."""
    missing = error.message.split("'")[1] if error.message.count("'") >= 2 else error.message
    spec = (error.schema.get("properties") or {}).get(missing, {}) if isinstance(error.schema, Mapping) else {}
    if isinstance(spec, Mapping) and spec.get("enum"):
        what = f"one of {', '.join(map(str, spec['enum']))}"
    elif isinstance(spec, Mapping) and spec.get("description"):
        what = spec["description"]
    else:
        what = "missing"
    return _key([*error.absolute_path, missing]), f"required: {what}"


def _one_of_keys(error) -> list[str] | None:
    """The keys of a ``oneOf`` whose branches each only require one key, else None."""
    branches = error.validator_value
    if not all(isinstance(b, Mapping) and set(b) == {"required"} and len(b["required"]) == 1
               for b in branches):
        return None
    return [b["required"][0] for b in branches]


def check_schema(config: Mapping[str, Any], schema_path: str | os.PathLike = SCHEMA_PATH) -> None:
    """Raise ``RefsrError('config key K', problem)`` for the most relevant schema violation."""
    validator = jsonschema.Draft202012Validator(schema(schema_path))
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(config)))
    if error is None:
        return
    key, problem = _key(error.absolute_path), error.message
    if error.validator == "additionalProperties":
        problem = f"unknown key ({error.message})"
    elif error.validator == "required":
        key, problem = _required_problem(error)
    elif error.validator == "oneOf" and _one_of_keys(error) and isinstance(error.instance, Mapping):
        keys = _one_of_keys(error)
        problem = exactly_one_of(keys, [k for k in keys if k in error.instance])
    raise RefsrError(f"config key {key}", problem)


def check_references(config: Mapping[str, Any]) -> None:
    """Cross-key checks the schema cannot express: dataset names must be usable as folder names
    (not empty, no '/', no leading '.') and exist, the main and grid levels must be evaluated."""
    names = set(config.get("datasets", {}))
    for name in sorted(names, key=str):
        bad = ("is empty" if not str(name).strip() else
               "holds '/'" if "/" in str(name) or "\\" in str(name) else
               "starts with '.'" if str(name).startswith(".") else
               "holds a control character" if any(ord(c) < 32 for c in str(name)) else None)
        if bad is not None:  # it names folders (data/<name>/, results/sr/<model>/<name>/)
            raise RefsrError(f"config key datasets.{name}", f"a dataset name is a folder name; {name!r} {bad}")
    wanted = [("train_dataset", config.get("train_dataset"))]
    wanted += [("eval_datasets", n) for n in config.get("eval_datasets", [])]
    for key, name in wanted:
        if name not in names:
            raise RefsrError(f"config key {key}",
                             f"{name!r} is not one of the datasets ({', '.join(sorted(names))})")
    ev = config.get("evaluation", {})
    levels = list(ev.get("levels", []))
    used = [("evaluation.main_level", ev.get("main_level"))]
    used += [("evaluation.grid_levels", lv) for lv in ev.get("grid_levels", [])]
    for key, level in used:
        if levels and level not in levels:
            raise RefsrError(f"config key {key}",
                             f"{level!r} is not one of evaluation.levels ({', '.join(levels)})")


def validate(config: Mapping[str, Any], schema_path: str | os.PathLike = SCHEMA_PATH) -> dict:
    """The complete config: ``config`` checked against the schema, every default filled in.

    The input is not modified. Raises a one-line :class:`RefsrError` naming the key.
    """
    check_schema(config, schema_path)
    out = copy.deepcopy(dict(config))
    _filling_validator()(schema(schema_path)).validate(out)
    _follow_levels(out, config.get("evaluation") or {})
    check_references(out)
    return out


def _follow_levels(config: dict, given: Mapping[str, Any]) -> None:
    """Defaults that depend on ``evaluation.levels`` follow it: an unset ``main_level`` is the
    default (L1) when evaluated, else the first evaluated level; an unset ``grid_levels`` is the
    default's evaluated levels, else the first three evaluated ones. A level the user set and
    does not evaluate stays an error (:func:`check_references`)."""
    ev = config.get("evaluation")
    if not isinstance(ev, dict) or not ev.get("levels"):
        return
    levels = list(ev["levels"])
    if "main_level" not in given and ev.get("main_level") not in levels:
        ev["main_level"] = levels[0]
    if "grid_levels" not in given and not set(ev.get("grid_levels") or []) <= set(levels):
        ev["grid_levels"] = [lv for lv in ev.get("grid_levels") or [] if lv in levels] or levels[:3]


def load(path: str | os.PathLike | None) -> dict:
    """Read a YAML config file (``None``: an empty config) and :func:`validate` it."""
    raw: Any = {}
    if path is not None:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise RefsrError(path, f"cannot read the config ({type(err).__name__}: {err})") from None
        if not isinstance(raw, Mapping):
            raise RefsrError(path, "a config file must hold a mapping of keys")
    return validate(raw)


@functools.cache
def _defaults() -> dict:
    return validate({})


def lookup(config: Mapping[str, Any], dotted: str | None) -> Any:
    """The value at a dotted path of a config (``"ttsr.loss"``; ``None`` or ``""``: the whole
    config). The one dotted-path lookup of the package."""
    node: Any = config
    for part in dotted.split(".") if dotted else ():
        node = node[part]
    return node


def defaults(section: str | None = None) -> Any:
    """The schema's defaults: the whole config, or one dotted ``section`` (e.g.
    ``"matching.approximate"``). A fresh copy on every call."""
    return copy.deepcopy(lookup(_defaults(), section))


def digest(config: Mapping[str, Any]) -> str:
    """First 12 hex digits of the sha256 of the JSON-dumped ``config`` (keys sorted): the
    config hash table captions carry."""
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted, recursively: equal configs give equal
    ``repr``, whatever the key order or formatting of the YAML they came from. Snakemake
    compares a rule's params by their representation, so every rule's params go through
    this (a re-ordered config must not re-run anything)."""
    if isinstance(value, Mapping):
        return {k: canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value

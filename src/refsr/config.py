"""Configuration checks that give one line naming the offending key."""

from __future__ import annotations

import os

import jsonschema
import yaml

from .errors import RefsrError


def _key(path) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "(top level)"


def check_config(config: dict, schema_path: str | os.PathLike) -> None:
    """Validate ``config`` against the JSON schema; raise RefsrError('config key K', problem).

    Of several violations the most relevant one (jsonschema's ``best_match``) is
    reported. For a dataset entry whose ``kind``-specific rules fail, the error
    names the dataset key.
    """
    with open(schema_path) as fh:
        schema = yaml.safe_load(fh)
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return
    problem = error.message
    if error.validator == "additionalProperties":
        problem = f"unknown key ({error.message})"
    raise RefsrError(f"config key {_key(error.absolute_path)}", problem)


def check_references(config: dict) -> None:
    """Cross-key checks the schema cannot express: dataset names must exist."""
    names = set(config.get("datasets", {}))
    wanted = [("train_dataset", config.get("train_dataset"))]
    wanted += [("eval_datasets", n) for n in config.get("eval_datasets", [])]
    for key, name in wanted:
        if name not in names:
            raise RefsrError(f"config key {key}", f"{name!r} is not one of the datasets ({', '.join(sorted(names))})")

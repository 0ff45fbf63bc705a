"""The house's rules (docs/architecture.md): module sizes, one Markdown table writer, the
registry as the one place a method is declared. The linters (layer contracts, the workflow
linted and formatted, ruff) are `make lint`, which CI runs before the tests (.ci/run)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from refsr.core.config import defaults, schema
from refsr.models import registry

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: Modules allowed above the size limit, with the reason (none today).
LONG_MODULES: dict[str, str] = {}
MAX_LINES = 450


def test_modules_stay_small():
    long = {str(p.relative_to(ROOT / "src")): len(p.read_text().splitlines())
            for p in (ROOT / "src" / "refsr").rglob("*.py")}
    too_long = {k: n for k, n in long.items() if n > MAX_LINES and k not in LONG_MODULES}
    assert not too_long, too_long


def test_one_markdown_table_writer():
    """Markdown tables are formatted by refsr.core.markdown only: a separator row (``|---|``,
    ``|:---|``, ``|---:|``) spelled out anywhere else in the package is a second table writer."""
    separator = re.compile(r"\|:?-{3,}:?\|")
    writer = ROOT / "src" / "refsr" / "core" / "markdown.py"
    others = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "src" / "refsr").rglob("*.py"))
              if p != writer and separator.search(p.read_text())]
    assert not others, others


def test_one_training_rule_for_every_model():
    rules = "".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    assert rules.count("rule train:") == 1
    # the only copies of a rule are the ablations' training chain on another degradation (one
    # per rule, with the {model} wildcard kept), never one per model
    assert re.findall(r"use rule (\w+) as (\w+)", rules) == [
        ("correspondence", "correspondence_variant"), ("train", "train_variant")]
    for name in registry.names():
        assert f'"{name}"' not in rules and f"'{name}'" not in rules, name  # no model named in rules


@pytest.mark.parametrize("name", registry.names())
def test_every_registered_model_is_complete(name):
    spec = registry.get(name)
    if spec.parent is not None:
        assert registry.names().index(spec.parent) < registry.names().index(name)  # parents first
    if not spec.trainable:
        return
    assert name in defaults("train.iterations"), f"{name} has no train.iterations entry in the schema"
    from refsr.models.checkpoint import architecture

    cls = architecture(name)
    arch = registry.arch_config(name, defaults())
    assert set(arch) == set(spec.arch_keys) and cls is not None


def test_schema_lists_no_model_names_of_its_own():
    models = schema()["properties"]["models"]
    assert "enum" not in models["items"]
    # every model the pipeline can run without released weights (those need pretrained: entries)
    assert models["default"] == [n for n in registry.names() if not registry.get(n).released_only]

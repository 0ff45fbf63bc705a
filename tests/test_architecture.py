"""The house's rules (docs/architecture.md): `make lint` (layer contracts, the workflow linted
and formatted, ruff), module sizes, the registry as the one place a method is declared."""

from __future__ import annotations

import re
import subprocess
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


def lint_commands() -> list[str]:
    """The commands of the Makefile's `lint` recipe, with $(BIN) this Python's bin folder."""
    lines = (ROOT / "Makefile").read_text().split("\nlint:", 1)[1].split("\n")[1:]
    recipe = [line.strip() for line in lines[:next(i for i, x in enumerate(lines) if not x.startswith("\t"))]]
    return [line.replace("$(BIN)", str(BIN)) for line in recipe]


def test_make_lint_passes():
    """CI runs `make test`, not `make lint`: this is the one test that runs the linters, the
    Makefile's own commands (snakemake --lint, snakefmt --check, ruff, lint-imports: the layer
    contracts of docs/architecture.md), so the two cannot drift apart."""
    commands = lint_commands()
    assert any("lint-imports" in c for c in commands) and any("snakemake --lint" in c for c in commands)
    for command in commands:
        proc = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, f"{command}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        if "lint-imports" in command:
            assert "broken" not in proc.stdout.split("Contracts:")[-1].replace("0 broken", "")


def test_modules_stay_small():
    long = {str(p.relative_to(ROOT / "src")): len(p.read_text().splitlines())
            for p in (ROOT / "src" / "refsr").rglob("*.py")}
    too_long = {k: n for k, n in long.items() if n > MAX_LINES and k not in LONG_MODULES}
    assert not too_long, too_long


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
    assert models["default"] == registry.names()

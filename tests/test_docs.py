"""The docs against the code (issue 27).

What the hand-written docs name must exist, and what exists must be documented:

- every ``refsr <subcommand>`` in the docs' code (inline code spans and fenced blocks) is a
  subcommand of ``refsr.cli.build_parser()``, and every ``--flag`` written after it on the same
  line is a flag of that subcommand; a flag standing alone in an inline span is a flag of some
  ``refsr`` subcommand or one of the other tools' flags listed in ``FOREIGN_FLAGS``;
- every config key the docs name (a backticked dotted key such as ``matching.max_mb``, an inline
  YAML mapping such as ``reference: {align: homography}``, the keys of a fenced ``yaml`` block)
  exists in the config schema;
- every subcommand, every flag and every top-level config section appears in the hand-written
  docs (README.md, BENCHMARKS.md and docs/**/*.md as they are in the repository). The generated
  reference pages (configuration, CLI) do not count: their markers expand only when the site is
  built, so a section or flag is documented only once someone wrote a sentence about it.

And: README.md stays short and keeps the two set-up commands; the site builds in strict mode.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from refsr.cli import build_parser
from refsr.core.config import schema

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").rglob("*.md"))]
README_MAX_LINES = 150

#: Flags of other tools (Snakemake, SLURM, pip, the released code) the docs write on their own.
FOREIGN_FLAGS = {"--sdm", "--config", "--configfile", "--profile", "--cores", "--report", "--lint",
                 "--check", "--use-conda", "--gpus", "--cpus-per-gpu", "--gres", "--no-deps",
                 "--gpu_ids", "--decay", "--strict", "--target"}

FILE_SUFFIXES = {"json", "csv", "md", "tex", "png", "pdf", "py", "pt", "yaml", "html", "npz", "mat", "sh"}
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```", re.S | re.M)
SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
COMMAND = re.compile(r"(?:^|[\s/(\[])refsr ([a-z][\w-]*)(?: ([a-z][\w-]*))?")
FLAG = re.compile(r"(?<![\w-])--[a-z][\w-]*")
DOTTED = re.compile(r"^[a-z_][a-z0-9_]*(?:\.(?:[A-Za-z0-9_*]+|<[^>]+>))+$")


# --- reading the docs --------------------------------------------------------------------

def _code(path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """(language, body) of every fenced block, and every inline code span outside them."""
    text = path.read_text(encoding="utf-8")
    fences = [(m.group("lang"), m.group("body")) for m in FENCE.finditer(text)]
    return fences, SPAN.findall(FENCE.sub("", text))


def _segments(path: Path) -> list[str]:
    """Every inline span and every line of a fenced block: the units a command is read from."""
    fences, spans = _code(path)
    return spans + [line for _, body in fences for line in body.splitlines()]


# --- the parser ----------------------------------------------------------------------------

def _commands() -> dict[str, argparse.ArgumentParser]:
    """'degrade', 'sr', ..., 'bench swap', 'bench all' -> their parser (leaves only)."""
    out = {}

    def walk(parser, prefix):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    words = f"{prefix} {name}".strip()
                    if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                        walk(sub, words)
                    else:
                        out[words] = sub

    walk(build_parser(), "")
    return out


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"}


COMMANDS = _commands()
GROUPS = {c.split()[0] for c in COMMANDS}


def _command_of(first: str, second: str | None) -> str | None:
    """The leaf command named by ``refsr FIRST [SECOND]`` (``bench`` alone: None, a group)."""
    if f"{first} {second}" in COMMANDS:
        return f"{first} {second}"
    return first if first in COMMANDS else None


# --- the schema ----------------------------------------------------------------------------

SCHEMA = schema()


def _deref(node: dict) -> dict:
    ref = node.get("$ref")
    if ref:
        target = SCHEMA
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        return target
    return node


def _children(node: dict) -> dict[str, dict] | None:
    """Named children of a schema node (a dataset's every kind's keys together), or None."""
    node = _deref(node)
    props = dict(node.get("properties", {}))
    for branch in node.get("allOf", ()):
        props.update(branch.get("then", {}).get("properties", {}))
    return props


def _resolve(parts: list[str]) -> bool:
    """Whether a dotted config path exists; ``<placeholder>`` and ``*`` match any child."""
    node = SCHEMA
    for part in parts:
        node = _deref(node)
        children = _children(node)
        extra = node.get("additionalProperties")
        if part in children:
            node = children[part]
        elif isinstance(extra, dict):  # a name the user chooses (a dataset, a model)
            node = extra
        elif (part == "*" or part.startswith("<")) and children:
            node = next(iter(children.values()))
            if part == "*":
                return True
        elif node.get("type") == "array" and isinstance(node.get("items"), dict):
            node = node["items"]
            if part not in _children(node):
                return False
            node = _children(node)[part]
        else:
            return False
    return True


def _yaml_paths(value, prefix=()) -> list[tuple[str, ...]]:
    """Every key path of a YAML mapping (dotted keys split), lists of mappings walked."""
    out = []
    if isinstance(value, dict):
        for key, sub in value.items():
            path = (*prefix, *str(key).split("."))
            out.append(path)
            out += _yaml_paths(sub, path)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                out += _yaml_paths(item, prefix)
    return out


def _is_module(dotted: str) -> bool:
    """``inference.resolver.SuperResolver`` names code in src/refsr, not a config key."""
    first, second = dotted.split(".")[:2]
    base = ROOT / "src" / "refsr" / first
    return (base / f"{second}.py").exists() or (base / second).is_dir()


def _config_mentions(path: Path) -> list[tuple[str, ...]]:
    """Config key paths a page names: dotted spans, inline YAML mappings, yaml blocks."""
    top = set(SCHEMA["properties"])
    fences, spans = _code(path)
    out = []
    for span in spans:
        span = span.strip()
        if (DOTTED.match(span) and span.split(".")[0] in top and not _is_module(span)
                and span.rsplit(".", 1)[1] not in FILE_SUFFIXES):
            out.append(tuple(span.split(".")))
        elif ":" in span and re.split(r"[.:\s]", span)[0] in top:
            try:
                value = yaml.safe_load(span)
            except yaml.YAMLError:
                continue
            if isinstance(value, dict):
                out += _yaml_paths(value)
    for lang, body in fences:
        if lang == "yaml":
            value = yaml.safe_load(body)
            if isinstance(value, dict) and set(value) <= top | {"datasets"}:
                out += _yaml_paths(value)
    return out


# --- what the docs name exists -------------------------------------------------------------

@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_commands_and_flags_in_the_docs_exist(path):
    all_flags = set().union(*(_flags(p) for p in COMMANDS.values()))
    problems = []
    for seg in _segments(path):
        code = seg.split(" #")[0]  # a shell comment is prose
        for m in COMMAND.finditer(code):
            first, second = m.group(1), m.group(2)
            if first not in GROUPS:
                problems.append(f"`refsr {first}`: no such subcommand ({seg!r})")
                continue
            cmd = _command_of(first, second)
            if cmd is None:
                if second is not None and not second.startswith("..."):
                    problems.append(f"`refsr {first} {second}`: no such subcommand ({seg!r})")
                continue
            for flag in FLAG.findall(code[m.end():]):
                if flag not in _flags(COMMANDS[cmd]):
                    problems.append(f"`refsr {cmd}` has no flag {flag} ({seg!r})")
        if not COMMAND.search(code) and seg.startswith("--"):
            flag = FLAG.match(seg).group(0)
            if flag not in all_flags | FOREIGN_FLAGS:
                problems.append(f"{flag}: no refsr subcommand has this flag ({seg!r})")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_keys_in_the_docs_exist(path):
    missing = sorted({".".join(p) for p in _config_mentions(path) if not _resolve(list(p))})
    assert not missing, f"{path.name} names config keys the schema does not have: {missing}"


# --- what exists is documented -------------------------------------------------------------

def _all_segments() -> list[str]:
    return [seg for path in DOCS for seg in _segments(path)]


def test_every_subcommand_is_documented():
    named = set()
    for seg in _all_segments():
        for m in COMMAND.finditer(seg):
            named.add(m.group(1))
            if m.group(2):
                named.add(f"{m.group(1)} {m.group(2)}")
    missing = sorted(c for c in COMMANDS if c not in named)
    assert not missing, f"subcommands no hand-written page names: {missing}"


def test_every_flag_is_documented():
    text = "\n".join(_all_segments())
    written = set(FLAG.findall(text))
    missing = sorted(f"refsr {cmd} {flag}" for cmd, p in COMMANDS.items() for flag in _flags(p)
                     if flag not in written)
    assert not missing, f"flags no hand-written page names: {missing}"


def test_every_top_level_config_section_is_documented():
    named = {p[0] for path in DOCS for p in _config_mentions(path)}
    named |= {s.strip() for path in DOCS for s in _code(path)[1]}
    missing = sorted(k for k in SCHEMA["properties"] if k not in named)
    assert not missing, f"top-level config sections no hand-written page names: {missing}"


# --- the README and the site ---------------------------------------------------------------

def test_readme_is_short_and_keeps_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    assert "make run" in text and "make test" in text
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).exists(), f"README links to a missing page: {link}"


def test_the_checker_catches_mistakes(tmp_path):
    """The checks above are not vacuous: a wrong command, flag and key are found."""
    page = tmp_path / "bad.md"
    page.write_text("`refsr srr`, `refsr sr --lr a --nope`, `matching.max_gb`, `--nowhere`\n"
                    "```yaml\nevaluation: {levls: [L1]}\n```\n")
    with pytest.raises(AssertionError) as err:
        test_commands_and_flags_in_the_docs_exist(page)
    assert all(s in str(err.value) for s in ("refsr srr", "--nope", "--nowhere"))
    with pytest.raises(AssertionError) as err:
        test_config_keys_in_the_docs_exist(page)
    assert "matching.max_gb" in str(err.value) and "evaluation.levls" in str(err.value)


@pytest.mark.skipif(shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None,
                    reason="mkdocs not installed (pip install -e '.[dev]')")
def test_site_builds_strict(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    run = subprocess.run([mkdocs, "build", "--strict", "-q", "-d", str(tmp_path / "site")], cwd=ROOT,
                         capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1",
                                                               "PATH": str(Path(sys.executable).parent)})
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "site" / "configuration" / "index.html").exists()

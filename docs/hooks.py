"""MkDocs hooks of the refsr site (mkdocs.yml ``hooks:``); nothing here is part of the package.

Pages hold markers that this hook replaces while the site is built, so that what the code
and the pipeline already say is never retyped in the docs:

- ``<!-- refsr:config-reference -->``: one table per top-level section of the config schema
  (``refsr.core.config.schema()``): key, type, default, description; dataset kinds and the
  items of ``ablations`` / ``pretrained`` get their own tables.
- ``<!-- refsr:cli-reference -->``: every ``refsr`` subcommand of ``refsr.cli.build_parser()``
  with its usage line and a table of its arguments (flags, default, choices, help).
- ``<!-- refsr:include PATH | COMMAND -->``: the file PATH (relative to the repository root,
  e.g. a table the pipeline writes under ``results/``) when it exists, else a note that
  COMMAND produces it. Missing optional files are not warnings: the site builds from a fresh
  clone.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CONFIG_MARKER = "<!-- refsr:config-reference -->"
CLI_MARKER = "<!-- refsr:cli-reference -->"
INCLUDE = re.compile(r"<!-- refsr:include (?P<path>[^|>]+?)\s*\|\s*(?P<cmd>[^>]+?)\s*-->")


# --- configuration reference (from the schema) ---------------------------------------------

def _cell(text: str) -> str:
    """One Markdown table cell: whitespace collapsed, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _type(node: dict) -> str:
    if "enum" in node:
        return "one of " + ", ".join(f"`{v}`" for v in node["enum"] if v is not None) + (
            " or `null`" if None in node["enum"] else "")
    if "const" in node:
        return f"`{node['const']}`"
    t = node.get("type", "any")
    types = t if isinstance(t, list) else [t]
    out = " or ".join(types)
    if "array" in types and isinstance(node.get("items"), dict):
        item = node["items"]
        inner = ("one of " + ", ".join(f"`{v}`" for v in item["enum"])) if "enum" in item else item.get("type", "any")
        out += f" of {inner}"
    return out


def _default(node: dict) -> str:
    if "default" not in node:
        return "required" if node.get("_required") else "–"
    return f"`{json.dumps(node['default'], ensure_ascii=False)}`"


def _rows(node: dict, prefix: str, required: tuple[str, ...] = ()) -> list[tuple[str, dict]]:
    """(dotted key, schema node) of every leaf under ``node``; objects with properties are
    walked, their own row kept only when they carry a description of their own."""
    rows = []
    for key, sub in node.get("properties", {}).items():
        dotted = f"{prefix}.{key}" if prefix else key
        sub = dict(sub, _required=key in required)
        if "properties" in sub:
            if sub.get("description"):
                rows.append((dotted, {"type": "object", "description": sub["description"]}))
            rows += _rows(sub, dotted, tuple(sub.get("required", ())))
        else:
            rows.append((dotted, sub))
    return rows


def _table(rows: list[tuple[str, dict]]) -> str:
    lines = ["| key | type | default | description |", "|:---|:---|:---|:---|"]
    for key, node in rows:
        lines.append(f"| `{key}` | {_cell(_type(node))} | {_cell(_default(node))} | "
                     f"{_cell(node.get('description', ''))} |")
    return "\n".join(lines)


def config_reference() -> str:
    from refsr.core.config import schema

    sch = schema()
    props = sch["properties"]
    scalars = [(k, v) for k, v in props.items() if "properties" not in v and "additionalProperties" not in v
               and not (v.get("type") == "array" and "properties" in v.get("items", {}))]
    out = ["## Top-level keys", "", _table(scalars), ""]
    for key, node in props.items():
        if (key, node) in scalars:
            continue
        out += [f"## `{key}`", "", _cell(node.get("description", "")), ""]
        if key == "datasets":
            out += [_table([("datasets.NAME.kind", sch["$defs"]["dataset"]["properties"]["kind"])]), ""]
            for branch in sch["$defs"]["dataset"]["allOf"]:
                props_k = branch["then"]["properties"]
                kind = props_k["kind"]["const"]
                rows = [(f"datasets.NAME.{k}", dict(v, _required=k in branch["then"].get("required", ())))
                        for k, v in props_k.items() if k != "kind"]
                out += [f"### kind `{kind}`", "", _table(rows), ""]
            continue
        if node.get("type") == "array" and isinstance(node.get("items"), dict) and "properties" in node["items"]:
            out += [f"Default: `{json.dumps(node.get('default'), ensure_ascii=False)}`", "",
                    "Each item:", "",
                    _table([(f"{key}[].{k}", dict(v, _required=k in node["items"].get("required", ())))
                            for k, v in node["items"]["properties"].items()]), ""]
            continue
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and "properties" in extra:
            out += [_table([(f"{key}.MODEL.{k}", dict(v, _required=k in extra.get("required", ())))
                            for k, v in extra["properties"].items()]), ""]
            continue
        out += [_table(_rows(node, key)), ""]
    return "\n".join(out)


# --- CLI reference (from the argparse parser) ----------------------------------------------

def _subparsers(parser: argparse.ArgumentParser, prefix: str):
    """(command words, parser, help) of every leaf subcommand, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                words = f"{prefix} {name}"
                if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                    yield words, sub, helps.get(name), False
                    yield from _subparsers(sub, words)
                else:
                    yield words, sub, helps.get(name), True


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help:
        return ""
    return parser._get_formatter()._expand_help(action)


def cli_reference() -> str:
    from refsr.cli import build_parser

    parser = build_parser()
    out = []
    for words, sub, helptext, leaf in _subparsers(parser, parser.prog):
        out += [f"## `{words}`", "", _cell(helptext or ""), ""]
        if not leaf:
            continue
        usage = " ".join(sub.format_usage().split())
        usage = usage.removeprefix("usage: ")
        out += ["```text", usage, "```", "",
                "| argument | default | choices | help |", "|:---|:---|:---|:---|"]
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            name = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.dest.upper()}`"
            if action.required and action.option_strings:
                name += " (required)"
            default = action.default
            if isinstance(action, argparse._StoreTrueAction) or default in (None, argparse.SUPPRESS):
                dflt = "–"
            else:
                dflt = f"`{default}`"
            choices = ", ".join(f"`{c}`" for c in action.choices) if action.choices else "–"
            out.append(f"| {name} | {_cell(dflt)} | {_cell(choices)} | {_cell(_help(sub, action))} |")
        out.append("")
    return "\n".join(out)


# --- includes of files the pipeline writes --------------------------------------------------

def _include(match: re.Match) -> str:
    path, cmd = match.group("path").strip(), match.group("cmd").strip()
    file = ROOT / path
    if file.is_file():
        return f"*From `{path}` (written by `{cmd}`):*\n\n" + file.read_text(encoding="utf-8")
    return (f'!!! note "Not built yet: `{path}`"\n'
            f"    This table is written by `{cmd}`; build the site again afterwards (`make docs`) "
            f"to see it here.\n")


# --- MkDocs entry point ---------------------------------------------------------------------

def on_page_markdown(markdown: str, page, config, files, **_) -> str:
    if CONFIG_MARKER in markdown:
        markdown = markdown.replace(CONFIG_MARKER, config_reference())
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    return INCLUDE.sub(_include, markdown)

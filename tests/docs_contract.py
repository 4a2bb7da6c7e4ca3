"""What the docs say, checked against what the project is: each check reads a doc's text and returns its false
statements in words (an empty list: true). Pure, so tests can feed each one a deliberately wrong text."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import unicodedata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "CHANGELOG.md",
    ROOT / "training" / "README.md",
]
SCHEMAS = ROOT / "schemas" / "events"

# ---------------------------------------------------------------- template parameters
TABLE_ROW = re.compile(r"^\| `([A-Z][A-Za-z0-9]+)` \| (`[^`]*`|empty) \|", re.MULTILINE)
OVERRIDE = re.compile(r"(?<![\w.$-])([A-Z][a-z]+(?:[A-Z0-9][a-z0-9]*)+)=(\S*)")


def parameter_problems(text: str, parameters: dict[str, Any], where: str) -> list[str]:
    """Rows of a parameter table (`Name` | `default`) and `Name=value` overrides that name a parameter the
    template does not have, or give a default that is not the template's."""
    problems = []
    for name, stated in TABLE_ROW.findall(text):
        if name not in parameters:
            problems.append(f"{where}: the parameter table names {name}, which the template does not have")
            continue
        default = str(parameters[name].get("Default", ""))
        said = "" if stated == "empty" else stated.strip("`")
        if said != default:
            problems.append(f"{where}: {name}'s default is {default!r} in the template, the doc says {said!r}")
    for name, _ in OVERRIDE.findall(text):
        if name not in parameters and name not in NOT_PARAMETERS:
            problems.append(f"{where}: {name}=… sets a parameter the template does not have")
    return problems


# `Name=value` in the docs that is not a parameter override: an AWS API's own field.
NOT_PARAMETERS = {"RoleArn"}


# ---------------------------------------------------------------- pcam commands and flags
def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


COMMAND = re.compile(r"`(pcam [^`]+)`|^\s*(?:\$ )?(pcam .+)$", re.MULTILINE)


def pcam_problems(text: str, parser: argparse.ArgumentParser, where: str) -> list[str]:
    """Each `pcam …` in a doc (code spans and command lines) must name a command and flags the CLI has."""
    problems = []
    for match in COMMAND.finditer(text):
        line = (match.group(1) or match.group(2)).split("#")[0]
        try:
            words = shlex.split(line.replace("…", ""))
        except ValueError:
            words = line.split()
        current, path = parser, ["pcam"]
        for word in words[1:]:
            if word in ("&&", ";", ">", "2>&1", "|&"):
                break
            commands = _subcommands(current)
            word = word.split("|")[0] if all(part in commands for part in word.split("|")) else word
            if word in commands and not word.startswith("-"):
                current, path = commands[word], [*path, word]
                continue
            if word.startswith("--"):
                flag = word.split("=", 1)[0]
                if flag not in _options(current) and flag not in _options(parser):
                    problems.append(f"{where}: `{' '.join(path)}` has no flag {flag}")
            elif commands and re.fullmatch(r"[a-z][a-z-]*", word):
                problems.append(f"{where}: `{' '.join(path)}` has no command {word!r}")
                break
    return problems


# ---------------------------------------------------------------- event fields
FIELD = re.compile(r"`([a-z][a-z0-9_]*)`")
KEY_ROW = re.compile(r"^\| `([A-Z][A-Za-z ]+)` \| ([^|]*) \| ([^|]*) \|$", re.MULTILINE)


def newest_schema(detail_type: str) -> dict[str, Any]:
    stem = detail_type.lower().replace(" ", "-")
    versions = sorted(SCHEMAS.glob(f"{stem}.v*.json"), key=lambda p: int(p.stem.rsplit(".v", 1)[1]))
    return json.loads(versions[-1].read_text()) if versions else {}


def _fields_of(schema: dict[str, Any]) -> set[str]:
    """Every property name at any depth: a doc may name a nested field (``verdict``'s ``category``)."""
    names: set[str] = set()
    if isinstance(schema, dict):
        names |= set(schema.get("properties", {}))
        for value in schema.values():
            names |= _fields_of(value) if isinstance(value, dict | list) else set()
    elif isinstance(schema, list):
        for value in schema:
            names |= _fields_of(value)
    return names


def event_field_problems(text: str, where: str, schema_of=newest_schema) -> list[str]:
    """Fields integrators.md names for an event (its table of keys, and each event's section) must be in that
    event's newest schema."""
    problems = []
    keys_table = (
        text.split("| the same news when these are equal |", 1)[-1].split("\n\n", 1)[0]
        if ("| the same news when these are equal |" in text)
        else ""
    )
    for event, *columns in KEY_ROW.findall(keys_table):
        schema = schema_of(event)
        if not schema:
            continue
        fields = _fields_of(schema)
        for name in FIELD.findall(" ".join(columns)):
            if name not in fields:
                problems.append(f"{where}: `{event}` is keyed or ordered by {name!r}, which its schema lacks")
    for event, body in re.findall(r"^### ([A-Z][A-Za-z ]+)\n(.*?)(?=^#|\Z)", text, re.MULTILINE | re.DOTALL):
        schema = schema_of(event)
        newest = body.split("Version 2", 1)[-1] if "Version 2" in body else ""
        if not schema or not newest:
            continue
        fields = _fields_of(schema)
        for name in FIELD.findall(newest.split("\n\n")[0]):
            if name not in fields and not name.endswith(".json"):
                problems.append(f"{where}: section {event!r} names {name!r}, which its newest schema lacks")
    return problems


# ---------------------------------------------------------------- links and anchors
LINK = re.compile(r"(?<!!)\[[^\]]+\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    kept = "".join(c for c in text if c in " -" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(text: str) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not re.match(r"#{1,6} ", line):
            continue
        base = slug(line.lstrip("#"))
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


def link_problems(path: Path) -> list[str]:
    problems = []
    text = path.read_text()
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.name} links {target}"
        if not linked.exists():
            problems.append(f"{where}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
            problems.append(f"{where}: no such heading in {linked.name}")
    return problems


# ---------------------------------------------------------------- the changelog
def changelog_problems(text: str) -> list[str]:
    dates = re.findall(r"^## (\d{4}-\d{2}-\d{2})", text, re.MULTILINE)
    return [f"CHANGELOG: {later} comes after {earlier}, but it is newer: newest first"
            for earlier, later in zip(dates, dates[1:], strict=False) if later > earlier]  # fmt: skip

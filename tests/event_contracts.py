"""The event schemas integrators get (schemas/events/<event>.v<N>.json), the newest version of each, so the
files are the contract the tests hold the pipeline to."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).parents[1] / "schemas" / "events"
PAGE = SCHEMAS.parents[1] / "docs" / "integrators.md"
_FILE = re.compile(r"^(?P<event>[a-z0-9-]+)\.v(?P<version>[1-9][0-9]*)\.json$")


def schema_files() -> dict[Path, dict]:
    return {path: json.loads(path.read_text()) for path in sorted(SCHEMAS.glob("*.json"))}


@cache
def documented_schemas() -> dict[str, dict]:
    """Detail type → the newest version of its schema."""
    newest: dict[str, tuple[int, dict]] = {}
    for path, schema in schema_files().items():
        Draft202012Validator.check_schema(schema)
        version = int(_FILE.match(path.name)["version"])
        if version > newest.get(schema["title"], (0, {}))[0]:
            newest[schema["title"]] = (version, schema)
    return {title: schema for title, (_, schema) in newest.items()}


def contract_violations(detail_type: str, detail: dict) -> list[str]:
    """Why ``detail`` breaks its documented schema (empty when it conforms)."""
    schema = documented_schemas().get(detail_type)
    if schema is None:
        return [f"{detail_type!r} has no schema in {SCHEMAS}"]
    return [
        f"{detail_type}: {error.json_path}: {error.message}"
        for error in Draft202012Validator(schema).iter_errors(detail)
    ]

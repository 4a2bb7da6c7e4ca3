"""The event schemas of docs/integrators.md, read from the page itself, so the page is the contract."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from jsonschema import Draft202012Validator

PAGE = Path(__file__).parents[1] / "docs" / "integrators.md"
_SCHEMA_BLOCK = re.compile(r"^### (?P<name>[^\n]+)\n+```json schema\n(?P<schema>.*?)\n```", re.M | re.S)


@cache
def documented_schemas() -> dict[str, dict]:
    schemas = {m["name"].strip(): json.loads(m["schema"]) for m in _SCHEMA_BLOCK.finditer(PAGE.read_text())}
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)
    return schemas


def contract_violations(detail_type: str, detail: dict) -> list[str]:
    """Why ``detail`` breaks its documented schema (empty when it conforms)."""
    schema = documented_schemas().get(detail_type)
    if schema is None:
        return [f"{detail_type!r} has no schema in {PAGE.name}"]
    return [
        f"{detail_type}: {error.json_path}: {error.message}"
        for error in Draft202012Validator(schema).iter_errors(detail)
    ]

"""The event schemas integrators get (schemas/events/<event>.v<N>.json), the newest version of each, so the
files are the contract the tests hold the pipeline to."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from jsonschema import Draft202012Validator

from pcam_pipeline.aws import events

SCHEMAS = Path(__file__).parents[1] / "schemas" / "events"
PAGE = SCHEMAS.parents[1] / "docs" / "integrators.md"
_FILE = re.compile(r"^(?P<event>[a-z0-9-]+)\.v(?P<version>[1-9][0-9]*)\.json$")


def schema_files() -> dict[Path, dict]:
    return {path: json.loads(path.read_text()) for path in sorted(SCHEMAS.glob("*.json"))}


@cache
def versioned_schemas() -> dict[tuple[str, int], dict]:
    """(event, version) → its schema."""
    found = {}
    for path, schema in schema_files().items():
        Draft202012Validator.check_schema(schema)
        found[schema["title"], int(_FILE.match(path.name)["version"])] = schema
    return found


def documented_schemas() -> dict[str, dict]:
    """Event → the newest version of its schema."""
    return {event: versioned_schemas()[event, version] for event, version in sorted(versioned_schemas())}


def contract_violations(detail_type: str, detail: dict) -> list[str]:
    """Why ``detail`` breaks the schema its detail-type names ("Slide Scored v2"; version 1 unnamed)."""
    event = events.event_of(detail_type)
    version = 1 if event == detail_type else int(detail_type.rsplit(" v", 1)[1])
    schema = versioned_schemas().get((event, version))
    if schema is None:
        return [f"{detail_type!r} has no schema in {SCHEMAS}"]
    return [
        f"{detail_type}: {error.json_path}: {error.message}"
        for error in Draft202012Validator(schema).iter_errors(detail)
    ]

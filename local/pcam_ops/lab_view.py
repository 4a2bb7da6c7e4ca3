"""`pcam status --lab LAB`: what a lab sees of its own files, slides and datasets, read with the lab's own
credentials from its status objects (``core/lab_status``) in the data bucket; no other access is needed."""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.exceptions import ClientError

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.lab_status import index_key


def lab_status(bucket: str, lab: str, item: str | None = None) -> dict[str, Any]:
    """The lab's index with each item's full status; ``item`` (a dropped key or a slide id) narrows it."""
    s3 = boto3.client("s3")

    def read(key: str) -> dict[str, Any]:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    try:
        index = read(index_key(lab))
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("NoSuchKey", "404"):
            return {"lab": lab, "updated_at": None, "items": {}}
        raise InvalidInput(
            f"the status of lab {lab} cannot be read ({code})",
            f"credentials of lab {lab} (its policy from `pcam lab add`) and the deployment's bucket (--bucket)",
            str(exc),
        ) from exc
    items = {
        name: read(entry["status_key"])
        for name, entry in index.get("items", {}).items()
        if item is None or _about(name, item)
    }
    return {"lab": lab, "updated_at": index.get("updated_at"), "items": items}


def _about(name: str, item: str) -> bool:
    """An index name (files/…, slides/…) is about a dropped key (incoming/labs/<lab>/…) or a slide id."""
    wanted = item.split("/", 3)[-1] if item.startswith(("incoming/labs/", "labs/")) else item
    return name.endswith("/" + wanted) or name.split("/", 1)[-1] == wanted


def lab_status_lines(status: dict[str, Any]) -> list[str]:
    """One line per item: its name, stage, what it waits for, and where its results or reasons are."""
    lines = [f"lab {status['lab']} (updated {status['updated_at'] or 'never'})"]
    for name, document in status["items"].items():
        line = f"{name}: {document.get('stage')}"
        if document.get("waiting_for"):
            line += f"; waiting for {document['waiting_for']}"
        if document.get("reason"):
            line += f"; {document['reason']}"
        if document.get("results"):
            line += f"; results {document['results']['html']}"
        if document.get("quarantine"):
            line += f"; reason in {document['quarantine']['reason_key']}"
        lines.append(line)
    return lines

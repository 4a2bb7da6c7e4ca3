"""Which dropped files a queue message announces. Pure.

Accepts S3's EventBridge events (the template's wiring) and classic S3 notifications (an operator
may wire S3 straight to the queue). Keys in S3 notifications are URL-encoded, so keys are decoded;
the spelling in the event is kept too, for a key that only exists as spelled (see Ingestor).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from pcam_pipeline.core.dropped_files import DroppedFile, is_a_labs_file


def dropped_files_in(body: dict[str, Any]) -> list[DroppedFile]:
    """Return the lab's files a message announces; test events, other event kinds, folder markers and what
    operating systems add (``.DS_Store``: ``dropped_files.is_a_labs_file``) announce none."""
    if body.get("detail-type") == "Object Created" and body.get("source") == "aws.s3":
        detail = body["detail"]
        announced = [_dropped(detail["bucket"]["name"], detail["object"], "version-id", "etag")]
    else:
        announced = [
            _dropped(record["s3"]["bucket"]["name"], record["s3"]["object"], "versionId", "eTag")
            for record in body.get("Records", [])
            if str(record.get("eventName", "")).startswith("ObjectCreated")
        ]
    return [dropped for dropped in announced if is_a_labs_file(dropped.key)]


def _dropped(bucket: str, obj: dict[str, Any], version_field: str, etag_field: str) -> DroppedFile:
    return DroppedFile(
        bucket=bucket,
        key=unquote_plus(obj["key"]),
        event_key=obj["key"],
        version_id=_version_id(obj.get(version_field)),
        etag=obj.get(etag_field, ""),
        sequencer=obj.get("sequencer", ""),
    )


def _version_id(value: str | None) -> str | None:
    """S3 reports "null" for objects written while versioning was off; they are addressed without one."""
    return None if value in (None, "", "null") else value

"""Announcements on the pipeline's event bus, for the next stages and downstream systems."""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.exceptions import ClientError

from pcam_pipeline.aws.storage import AwsClient
from pcam_pipeline.core.errors import RetryableError, bounded
from pcam_pipeline.core.labs import lab_of

SOURCE = "pcam.pipeline"
SPLIT_READY = "Split Ready"
SLIDE_READY = "Slide Ready"
MODEL_EVALUATED = "Model Evaluated"
MODEL_PROMOTED = "Model Promoted"
SLIDE_SCORED = "Slide Scored"
# Failures, so that an integrator waiting for a result hears when none will come.
FILE_QUARANTINED = "File Quarantined"
SLIDE_SCORING_FAILED = "Slide Scoring Failed"
MODEL_FAILED = "Model Failed"
# What an EventBridge rule with a ScheduleExpression sends its targets (source aws.events, empty detail).
SCHEDULED_TICK = "Scheduled Event"


def with_lab(detail: dict[str, Any]) -> dict[str, Any]:
    """Every event says which lab it belongs to (``lab``: None for the deployment's own folders)."""
    if "lab" in detail:
        return detail
    return {**detail, "lab": lab_of(detail.get("slide_id") or detail.get("dataset") or "")}


# EventBridge refuses an entry over 256 KB (Source, DetailType and Detail together): the detail keeps a margin.
MAX_DETAIL_BYTES = 256 * 1024 - 2 * 1024


def fitted_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """The detail as published: with its lab, and its longest texts cut until it fits ``MAX_DETAIL_BYTES``.

    Every detail has a fixed set of fields, so cutting texts always ends; a detail too big to publish would be
    refused on every retry and end in the dead-letter queue."""
    detail = with_lab(detail)
    total = _json_bytes(detail)
    sizes = {path: _json_bytes(text) for path, text in _texts(detail)}
    while total > MAX_DETAIL_BYTES:  # cut the longest text by half, until the detail fits
        path = max(sizes, key=sizes.__getitem__)
        text = _text_at(detail, path)
        shorter = bounded(text, len(text) // 2)
        total, sizes[path] = total - sizes[path] + _json_bytes(shorter), _json_bytes(shorter)
        detail = _replaced(detail, path, shorter)
    return detail


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, default=str).encode())


def _text_at(detail: dict[str, Any], path: tuple[str, ...]) -> str:
    value: Any = detail
    for key in path:
        value = value[key]
    return str(value)


def _texts(value: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [found for key, inner in value.items() for found in _texts(inner, (*path, key))]
    return []


def _replaced(detail: dict[str, Any], path: tuple[str, ...], text: str) -> dict[str, Any]:
    head, *rest = path
    return {**detail, head: _replaced(detail[head], tuple(rest), text) if rest else text}


class EventPublisher:
    def __init__(self, bus_name: str, client: AwsClient | None = None):
        self._bus = bus_name
        self._client = client or boto3.client("events")

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        detail = fitted_detail(detail)
        entry = {
            "Source": SOURCE,
            "DetailType": detail_type,
            "Detail": json.dumps(detail, default=str),
            "EventBusName": self._bus,
        }
        try:
            response = self._client.put_events(Entries=[entry])
        except ClientError as exc:
            raise RetryableError(f"cannot publish {detail_type!r} on {self._bus}: {exc}") from exc
        if response.get("FailedEntryCount"):
            raise RetryableError(f"{detail_type!r} was refused by {self._bus}: {response['Entries']}")

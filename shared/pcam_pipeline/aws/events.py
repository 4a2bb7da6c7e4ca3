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

# The newest schema of each event (schemas/events/<event>.v<N>.json): its detail carries the version as
# ``schema_version``, and its detail-type names it ("Slide Scored v2"), so that a rule written for one version
# receives that version only. Version 1 keeps the plain name and has no ``schema_version``; it is published
# beside the newest until V1_RETIRED_ON (docs/integrators.md), unless the operator turns it off earlier.
SCHEMA_VERSIONS = {
    SPLIT_READY: 2,
    SLIDE_READY: 2,
    MODEL_EVALUATED: 2,
    MODEL_PROMOTED: 2,
    SLIDE_SCORED: 2,
    FILE_QUARANTINED: 2,
    SLIDE_SCORING_FAILED: 2,
    MODEL_FAILED: 2,
}
V1_RETIRED_ON = "2027-06-30"
# What version 1 did not have: "Slide Scored"'s summary grew the verdict, the report, the calibration and QC; and
# S3's sequencers of the uploads (an order integrators can compare) came with version 2.
_NOT_IN_V1 = {
    SLIDE_SCORED: ("verdict", "report_uri", "calibration", "qc", "stain", "run_id", "openslide_origin",
                   "input_sequencer"),
    SLIDE_READY: ("input_sequencer",),
    SPLIT_READY: ("x_sequencer", "y_sequencer"),
    FILE_QUARANTINED: ("sequencer",),
}  # fmt: skip
# The model's figures version 1 had (version 2 adds sensitivity, specificity and calibration to them).
_V1_MODEL_METRICS = ("auc", "accuracy", "recall", "precision", "f1", "count", "tumour_count", "threshold")
_METRICS_FIELD = {SLIDE_SCORED: "model_metrics", MODEL_EVALUATED: "metrics", MODEL_PROMOTED: "metrics"}


def detail_type_of(event: str, version: int) -> str:
    return event if version == 1 else f"{event} v{version}"


def event_of(detail_type: str) -> str:
    """The event a detail-type is a version of: "Slide Scored v2" → "Slide Scored"."""
    name, _, version = detail_type.rpartition(" v")
    return name if name and version.isdigit() else detail_type


def version_1(event: str, detail: dict[str, Any]) -> dict[str, Any]:
    """The detail as version 1 of the event had it."""
    dropped = ("schema_version", *_NOT_IN_V1.get(event, ()))
    detail = {key: value for key, value in detail.items() if key not in dropped}
    field = _METRICS_FIELD.get(event)
    if field and isinstance(detail.get(field), dict):
        detail[field] = {key: detail[field][key] for key in _V1_MODEL_METRICS if key in detail[field]}
    return detail


def versioned_entries(event: str, detail: dict[str, Any], with_v1: bool = True) -> list[tuple[str, dict[str, Any]]]:
    """(detail-type, detail) of each version published for one event: the newest, then version 1."""
    version = SCHEMA_VERSIONS[event]
    entries = [(detail_type_of(event, version), fitted_detail({**detail, "schema_version": version}))]
    if with_v1 and version > 1:
        entries.append((event, fitted_detail(version_1(event, detail))))
    return entries


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


def put_events_entries(bus: str, event: str, detail: dict[str, Any], with_v1: bool = True) -> list[dict[str, Any]]:
    """The PutEvents entries of one event: one per version published."""
    return [
        {"Source": SOURCE, "DetailType": detail_type, "Detail": json.dumps(body, default=str), "EventBusName": bus}
        for detail_type, body in versioned_entries(event, detail, with_v1)
    ]


class EventPublisher:
    def __init__(self, bus_name: str, client: AwsClient | None = None, with_v1: bool = True):
        self._bus, self._with_v1 = bus_name, with_v1
        self._client = client or boto3.client("events")

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        """Each version of the event in a request of its own: AWS's size rule reads as "the total entry size must
        be less than 256KB" for a batch, and each version alone may come near it. A retry after a failure sends
        them all again (delivery is at least once; each version's consumers deduplicate by the event's keys)."""
        for entry in put_events_entries(self._bus, detail_type, detail, self._with_v1):
            try:
                response = self._client.put_events(Entries=[entry])
            except ClientError as exc:
                raise RetryableError(f"cannot publish {detail_type!r} on {self._bus}: {exc}") from exc
            if response.get("FailedEntryCount"):
                raise RetryableError(f"{detail_type!r} was refused by {self._bus}: {response['Entries']}")

"""Announcements on the pipeline's event bus, for the next stages and downstream systems."""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.exceptions import ClientError

from pcam_pipeline.aws.storage import AwsClient
from pcam_pipeline.core.errors import RetryableError
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


class EventPublisher:
    def __init__(self, bus_name: str, client: AwsClient | None = None):
        self._bus = bus_name
        self._client = client or boto3.client("events")

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        detail = with_lab(detail)
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

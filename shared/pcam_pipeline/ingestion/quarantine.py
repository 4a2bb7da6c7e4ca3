"""Setting an unusable upload aside: moved to quarantine/ with a plain explanation beside it; nothing is lost.

Retry-safe: the decision and its "File Quarantined" event are recorded before anything moves, and a retry of
a delivery that failed part-way (the reason's file, the move, the bus, the last write) finishes it. The event
is published once per quarantine, however often the delivery is tried, and however many copies of it are
handled at once: the first to record the decision makes it, and one attempt at a time publishes it."""

from __future__ import annotations

from typing import Any

from pcam_pipeline.aws import events
from pcam_pipeline.aws.observability import logger, metrics
from pcam_pipeline.core import keys
from pcam_pipeline.core.dropped_files import DroppedFile
from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.labs import lab_of_key
from pcam_pipeline.core.ports import BlobStore, EventPublisher
from pcam_pipeline.core.statuses import FileStatus
from pcam_pipeline.state import now_iso
from pcam_pipeline.state.ingestion_views import FilesState
from pcam_pipeline.state.leases import given_back_on_failure


def quarantine(
    blobs: BlobStore, state: FilesState, publisher: EventPublisher, dropped: DroppedFile, problem: InvalidInput
) -> dict[str, Any]:
    """Record the decision and its "File Quarantined" event, then set the upload aside and announce it."""
    event = events.fitted_detail(  # recorded as it will be published
        {"key": dropped.key, "version": dropped.version, "sequencer": dropped.sequencer or None,
         "lab": lab_of_key(dropped.key), "quarantine_key": keys.quarantine_key(dropped.key),
         "error_uri": blobs.uri(keys.quarantine_error_key(dropped.key)), **problem.as_dict(),
         "quarantined_at": now_iso()}
    )  # fmt: skip
    if not state.record_quarantine(dropped.key, dropped.version, problem.describe(), event["quarantine_key"], event):
        return settle_quarantine(blobs, state, publisher, dropped, problem)  # a copy of this delivery came first
    logger.warning("quarantined", extra={"reason": problem.describe()})
    return finish_quarantine(blobs, state, publisher, dropped, event)


def settle_quarantine(
    blobs: BlobStore, state: FilesState, publisher: EventPublisher, dropped: DroppedFile, problem: InvalidInput
) -> dict[str, Any]:
    """Quarantine the upload unless an earlier delivery did: finish what that one left unfinished, if anything."""
    record = state.file_version(dropped.key, dropped.version)
    if record and record.unannounced_quarantine:
        return finish_quarantine(blobs, state, publisher, dropped, record.unannounced_quarantine)
    if record and record.status is FileStatus.QUARANTINED:
        return {"status": "quarantined", "reason": record.reason, "quarantine_key": record.quarantine_key}
    return quarantine(blobs, state, publisher, dropped, problem)


def unfinished_quarantine(state: FilesState, dropped: DroppedFile) -> dict[str, Any] | None:
    """The "File Quarantined" event of this upload that an earlier delivery recorded but did not publish."""
    record = state.file_version(dropped.key, dropped.version)
    return record.unannounced_quarantine if record else None


def finish_quarantine(
    blobs: BlobStore, state: FilesState, publisher: EventPublisher, dropped: DroppedFile, event: dict[str, Any]
) -> dict[str, Any]:
    """Write the reason beside the quarantined file, move the upload and publish its recorded event (each again
    on a retry: they are idempotent); then forget the event. One attempt at a time does it."""
    problem = InvalidInput(event["problem"], event["expected"], event["found"])
    done = {"status": "quarantined", "reason": problem.describe(), "quarantine_key": event["quarantine_key"]}
    lease = state.claim_quarantine_announcement(dropped.key, dropped.version)
    if lease is None:
        return done  # announced, or a copy of this delivery is announcing it now
    with given_back_on_failure(lambda: state.release_quarantine_announcement(dropped.key, dropped.version, lease)):
        blobs.put_json(keys.quarantine_error_key(dropped.key), error_report(event, problem))
        blobs.move(dropped.key, dropped.version_id, event["quarantine_key"])
        publisher.publish(events.FILE_QUARANTINED, event)
        state.mark_quarantine_announced(dropped.key, dropped.version)
    metrics.add_metric(name="FilesQuarantined", unit="Count", value=1)
    return done


def error_report(event: dict[str, Any], problem: InvalidInput) -> dict[str, Any]:
    """The .error.json beside a quarantined file: the recorded event's reason, in the lab's words."""
    return {"key": event["key"], "version": event["version"], "error": problem.describe(), **problem.as_dict(),
            "quarantined_at": event["quarantined_at"], "quarantined_as": event["quarantine_key"]}  # fmt: skip

"""Setting an unusable upload aside: moved to quarantine/ with a plain explanation beside it; nothing is lost.

Retry-safe: the decision and its "File Quarantined" event are recorded before anything moves, and a retry of
a delivery that failed part-way (the move, the bus, the last write) finishes it; the event is published once
per quarantine, however often the delivery is tried."""

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


def quarantine(
    blobs: BlobStore, state: FilesState, publisher: EventPublisher, dropped: DroppedFile, problem: InvalidInput
) -> dict[str, Any]:
    """Move the upload to quarantine/ with its reason beside it, record it, and announce "File Quarantined"."""
    target = keys.quarantine_key(dropped.key)
    error_key = keys.quarantine_error_key(dropped.key)
    quarantined_at = now_iso()
    error = {"key": dropped.key, "version": dropped.version, "error": problem.describe(), **problem.as_dict(),
             "quarantined_at": quarantined_at, "quarantined_as": target}  # fmt: skip
    event = events.fitted_detail(  # recorded as it will be published
        {"key": dropped.key, "version": dropped.version, "sequencer": dropped.sequencer or None,
         "lab": lab_of_key(dropped.key), "quarantine_key": target,
         "error_uri": blobs.uri(error_key), **problem.as_dict(), "quarantined_at": quarantined_at}
    )  # fmt: skip
    blobs.put_json(error_key, error)
    state.record_quarantine(dropped.key, dropped.version, problem.describe(), target, event)
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
    """Move the upload (again: a move is idempotent) and publish its recorded event; then forget the event."""
    blobs.move(dropped.key, dropped.version_id, event["quarantine_key"])
    publisher.publish(events.FILE_QUARANTINED, event)
    state.mark_quarantine_announced(dropped.key, dropped.version)
    metrics.add_metric(name="FilesQuarantined", unit="Count", value=1)
    reason = InvalidInput(event["problem"], event["expected"], event["found"]).describe()
    return {"status": "quarantined", "reason": reason, "quarantine_key": event["quarantine_key"]}

"""Setting an unusable upload aside: moved to quarantine/ with a plain explanation beside it; nothing is lost."""

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
    error = {
        "key": dropped.key,
        "version": dropped.version,
        "error": problem.describe(),
        **problem.as_dict(),
        "quarantined_at": now_iso(),
        "quarantined_as": target,
    }
    error_key = keys.quarantine_error_key(dropped.key)
    blobs.put_json(error_key, error)
    blobs.move(dropped.key, dropped.version_id, target)
    state.record_file(
        dropped.key, dropped.version, FileStatus.QUARANTINED, reason=problem.describe(), quarantine_key=target
    )
    publisher.publish(
        events.FILE_QUARANTINED,
        {"key": dropped.key, "version": dropped.version, "lab": lab_of_key(dropped.key), "quarantine_key": target,
         "error_uri": blobs.uri(error_key), **problem.as_dict(), "quarantined_at": error["quarantined_at"]},
    )  # fmt: skip
    metrics.add_metric(name="FilesQuarantined", unit="Count", value=1)
    logger.warning("quarantined", extra={"reason": problem.describe()})
    return {"status": "quarantined", "reason": problem.describe(), "quarantine_key": target}

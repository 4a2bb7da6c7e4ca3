"""Announcing a split or slide once all its inputs are converted: manifest first, then one event."""

from __future__ import annotations

from typing import Any

from pcam_pipeline.aws import events
from pcam_pipeline.aws.observability import logger
from pcam_pipeline.core import keys
from pcam_pipeline.core.ports import BlobStore, EventPublisher
from pcam_pipeline.core.records import PatchOwner, SlideRecord, SplitRecord, present
from pcam_pipeline.core.statuses import FileStatus
from pcam_pipeline.ingestion import manifests
from pcam_pipeline.state.ingestion_views import CompletionState
from pcam_pipeline.state.leases import Lease, given_back_on_failure


def readiness_token(record: PatchOwner) -> str | None:
    """Identity of the inputs a ready announcement is for, or None while something is missing.

    A shard that failed blocks it until that shard succeeds (a redrive); a failure of a split's counts
    is checked again by the completer."""
    if record.failed_shards or not record.shards_complete:
        return None
    if not isinstance(record, SplitRecord):
        return record.x_run
    if record.y_version is None:
        return None
    return f"{record.x_run}|{record.y_version}"


class Completer:
    def __init__(self, blobs: BlobStore, state: CompletionState, publisher: EventPublisher):
        self._blobs, self._state, self._events = blobs, state, publisher

    def complete_if_ready(self, owner_pk: str, claimer: str) -> bool:
        """Write the manifest and announce the owner if all its inputs are in; True if this call did."""
        record = self._state.owner(owner_pk)
        token = readiness_token(record) if record else None
        if record is None or token is None:
            return False
        if isinstance(record, SplitRecord) and record.x_count != record.y_count:
            self._state.mark_failed(
                owner_pk, f"images ({record.x_count}) and labels ({record.y_count}) disagree in number"
            )
            return False
        if isinstance(record, SplitRecord) and not record.y_labels_key:
            self._state.mark_failed(
                owner_pk, "the labels were recorded by a version that kept no copy: drop them again"
            )
            return False
        lease = self._state.claim_ready(owner_pk, token, claimer)
        if lease is None:  # announced, or being announced by a copy of this message or another shard
            if record.announced_token == token:  # announced: finish the bookkeeping a failed attempt left
                self._record_converted(record)
            return False
        with given_back_on_failure(lambda: self._state.release_ready(owner_pk, lease)):
            announced = self._announce(owner_pk, record, token, lease)
        self._state.release_ready(owner_pk, lease)
        if announced:
            self._record_converted(record)
        return announced

    def _announce(self, owner_pk: str, record: SplitRecord | SlideRecord, token: str, lease: Lease) -> bool:
        if isinstance(record, SplitRecord):
            detail = self._write_split_manifest(record, token)
            detail_type = events.SPLIT_READY
        else:
            detail = self._write_slide_manifest(record)
            detail_type = events.SLIDE_READY
        # Ready before the event: its consumers read the owner's record and must find it ready.
        if not self._state.mark_ready(owner_pk, detail["manifest_key"], lease):
            logger.info("newer inputs are being announced; these are not", extra=detail)
            return False
        self._events.publish(detail_type, detail)
        self._state.mark_announced(owner_pk, token)
        logger.info(f"{detail_type}", extra=detail)
        return True

    def _record_converted(self, record: PatchOwner) -> None:
        upload = present(record.x_key, f"upload of {record.kind}")
        self._state.record_file(upload, present(record.x_version, f"version of {upload}"), FileStatus.CONVERTED,
                                patch_count=record.x_count)  # fmt: skip

    def _write_split_manifest(self, record: SplitRecord, token: str) -> dict[str, Any]:
        labels = self._blobs.get_array(present(record.y_labels_key, f"labels of {record.dataset}/{record.split}"))
        key = keys.split_manifest_key(record.dataset, record.split, token)
        lines = manifests.augmented_manifest_lines(self._blobs.bucket, images_of(record), labels)
        self._blobs.put_bytes(key, "".join(lines).encode(), "application/jsonlines")  # one PUT: whole or absent
        return {
            "dataset": record.dataset,
            "split": record.split,
            "manifest_key": key,
            "manifest_uri": self._blobs.uri(key),
            "patch_count": int(labels.size),
            "tumour_count": int(labels.sum()),
            "image_prefix": record.image_prefix,
            "image_edge": record.image_edge,
            "x_key": record.x_key,
            "x_version": record.x_version,
            "x_sequencer": record.x_sequencer,
            "y_key": record.y_key,
            "y_version": record.y_version,
            "y_sequencer": record.y_sequencer,
            "run_id": record.x_run,
        }

    def _write_slide_manifest(self, record: SlideRecord) -> dict[str, Any]:
        key = keys.slide_manifest_key(record.slide_id, present(record.x_run, f"upload of slide {record.slide_id}"))
        count = present(record.x_count, f"patch count of slide {record.slide_id}")
        body = manifests.transform_manifest(self._blobs.bucket, images_of(record), count)
        self._blobs.put_bytes(key, body.encode(), "application/json")
        return {
            "slide_id": record.slide_id,
            "manifest_key": key,
            "manifest_uri": self._blobs.uri(key),
            "patch_count": record.x_count,
            "has_coords": record.has_coords,
            "image_prefix": record.image_prefix,
            "input_key": record.x_key,
            "input_version": record.x_version,
            "input_sequencer": record.x_sequencer,
            "source_key": record.x_source_key,
            "source_version": record.x_source_version,
            "run_id": record.x_run,
        }


def images_of(record: PatchOwner) -> str:
    return present(record.image_prefix, f"images of {record.kind} {record.x_key}")

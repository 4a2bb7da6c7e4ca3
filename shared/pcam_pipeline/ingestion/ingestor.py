"""A dropped file: validate it, quarantine it with a reason, or plan its conversion shards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pcam_pipeline.aws.blob_store import S3BlobStore
from pcam_pipeline.aws.events import EventPublisher
from pcam_pipeline.aws.observability import logger
from pcam_pipeline.aws.queues import SqsQueue
from pcam_pipeline.core import dropped_files, keys, ports
from pcam_pipeline.core.dropped_files import DatasetSettingsFile, DroppedFile, SlideSidecarFile, WholeSlideFile
from pcam_pipeline.core.errors import InvalidInput, MisroutedEvent
from pcam_pipeline.core.settings import IngestSettings
from pcam_pipeline.core.statuses import FileStatus
from pcam_pipeline.ingestion.completion import Completer
from pcam_pipeline.ingestion.hdf5_input import FileLimits
from pcam_pipeline.ingestion.patch_files import PatchFileIngestion
from pcam_pipeline.ingestion.patches import image_shape
from pcam_pipeline.ingestion.quarantine import finish_quarantine, quarantine, unfinished_quarantine
from pcam_pipeline.ingestion.shard_planning import ShardPlanner
from pcam_pipeline.ingestion.training_settings import MAX_BYTES as MAX_SETTINGS_BYTES
from pcam_pipeline.ingestion.training_settings import parse_training_settings
from pcam_pipeline.state import StateStore
from pcam_pipeline.state.ingestion_views import IngestorState
from pcam_pipeline.wsi.ingestion import WholeSlideIngestion


class Ingestor:
    def __init__(
        self,
        settings: IngestSettings,
        blobs: ports.BlobStore | None = None,
        state: StateStore | None = None,
        publisher: ports.EventPublisher | None = None,
        queue: ports.MessageQueue | None = None,
        flow_queue: ports.MessageQueue | None = None,
    ):
        conversion = settings.conversion
        self._settings = settings
        self._blobs = blobs or S3BlobStore(conversion.bucket)
        store = state or StateStore(conversion.state_table)
        self._state: IngestorState = store
        # The edge of the JPEGs written (Split Ready tells training the image shape).
        image_edge = {"image_edge": image_shape(conversion.resize_to)[1]}
        queue = queue or SqsQueue(settings.convert_queue_url)
        planner = ShardPlanner(store, queue, settings.patches_per_shard, self._blobs, conversion.stain_normalisation)
        limits = FileLimits(max_patches=conversion.max_patches_per_file)
        self._events = publisher or EventPublisher(conversion.event_bus, with_v1=conversion.publish_v1_events)
        completer = Completer(self._blobs, store, self._events)
        self._patch_files = PatchFileIngestion(conversion, self._blobs, store, planner, completer, image_edge, limits)
        if flow_queue is None and settings.flow_queue_url:
            flow_queue = SqsQueue(settings.flow_queue_url)
        self._whole_slides = WholeSlideIngestion(conversion, self._blobs, store, planner, image_edge, flow_queue)

    def ingest_attempt(
        self, dropped: DroppedFile, attempt: int, ingest: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        """One delivery (``attempt``, the SQS receive count) of an upload's event, running ``ingest``.

        A crash in the HDF5 library kills the process: the handler cannot say why, and the queue tries
        again. So each delivery notes that it started and closes the note however it ends; the last
        delivery, seeing notes of deliveries that died, quarantines the file instead of dying the same way."""
        located = self._located(dropped)
        if located is None:
            return ingest()  # nothing to read: it says so
        dropped = located
        crashed = self._state.open_attempt(dropped.key, dropped.version, attempt)
        try:
            if crashed and attempt >= self._settings.conversion.max_receive_count:
                problem = InvalidInput(
                    "the file crashed the reader",
                    "a file the pipeline's HDF5 reader gets through",
                    f"{crashed} earlier attempt(s) ended without an answer (the process died)",
                )
                return quarantine(self._blobs, self._state, self._events, dropped, problem)
            return ingest()
        finally:
            self._state.close_attempt(dropped.key, dropped.version, attempt)

    def _located(self, dropped: DroppedFile) -> DroppedFile | None:
        """The upload as stored: its key as the event spelled it when the event did not URL-encode it."""
        for candidate in dict.fromkeys([dropped, dropped.as_spelled_in_event()]):
            if self._blobs.exists(candidate.key, candidate.version_id):
                return candidate
        return None

    def ingest(self, dropped: DroppedFile) -> dict[str, Any]:
        if dropped.bucket != self._blobs.bucket:
            raise MisroutedEvent(f"event for bucket {dropped.bucket!r}; this pipeline owns {self._blobs.bucket!r}")
        logger.append_keys(file_key=dropped.key, file_version=dropped.version)
        located = self._located(dropped)
        if located is None:
            # A late duplicate of an event for a file already quarantined, or one deleted meanwhile.
            logger.info("the dropped file is no longer there; nothing to do")
            return {"status": "gone"}
        dropped = located
        self._state.record_file_received(dropped.key, dropped.version)
        if event := unfinished_quarantine(self._state, dropped):  # an earlier delivery failed part-way
            return finish_quarantine(self._blobs, self._state, self._events, dropped, event)
        latest = self._blobs.latest_version(dropped.key)
        if latest != dropped.version:
            # A late or repeated event: handling this upload now would replace the newer one's results
            # (or, for a quarantined file, move the newer upload away).
            reason = f"upload {latest} of this key replaced it" if latest else "the key was deleted after this upload"
            if not self._state.record_file_superseded(dropped.key, dropped.version, reason):
                return {"status": "already handled"}
            logger.info("a newer upload of this key exists; not converted", extra={"latest_version": latest})
            return {"status": "superseded", "latest_version": latest}
        try:
            return self._ingest_upload(dropped)
        except InvalidInput as problem:
            return quarantine(self._blobs, self._state, self._events, dropped, problem)

    def continue_staged(self, ended: dict[str, Any]) -> dict[str, Any]:
        """A slide staging job ended ("Slide Staged"): plan the slide on its staged copy, or quarantine it with the
        job's reason. A newer upload meanwhile makes this one superseded, as at ingestion."""
        wanted = self._whole_slides.staging.wanted(ended["prefix"])
        dropped = replace(wanted.dropped, bucket=self._blobs.bucket)
        logger.append_keys(file_key=dropped.key, file_version=dropped.version, staging_job=ended["job"])
        if (latest := self._blobs.latest_version(dropped.key)) != dropped.version_id:
            reason = f"upload {latest} of this key replaced it" if latest else "the key was deleted after this upload"
            self._state.record_file_superseded(dropped.key, dropped.version, reason)
            return {"status": "superseded", "latest_version": latest}
        try:
            return self._whole_slides.continue_staged(dropped, wanted, ended)
        except InvalidInput as problem:
            return quarantine(self._blobs, self._state, self._events, dropped, problem)

    def _ingest_upload(self, dropped: DroppedFile) -> dict[str, Any]:
        kind = dropped_files.classify_incoming_key(dropped.key)
        if isinstance(kind, DatasetSettingsFile):
            return self._record_training_settings(dropped, kind)
        if isinstance(kind, WholeSlideFile):
            return self._whole_slides.ingest(dropped, kind)
        if isinstance(kind, SlideSidecarFile):
            return self._whole_slides.record_sidecar(dropped, kind)
        source_key, source_version = self._source_of(dropped, kind.compressed)
        return self._patch_files.ingest(dropped, kind, source_key, source_version)

    # ------------------------------------------------------------------ sources
    def _source_of(self, dropped: DroppedFile, compressed: bool) -> tuple[str, str | None]:
        """The object to read HDF5 from: the upload itself, or its decompressed copy in staging/."""
        if not compressed:
            return dropped.key, dropped.version_id
        target = keys.staged_key(dropped.key)
        staged_version = self._blobs.decompress(
            dropped.key, dropped.version_id, target, self._settings.max_uncompressed_bytes
        )
        self._state.record_file(dropped.key, dropped.version, status=FileStatus.STAGED, staged_key=target)
        return target, staged_version

    # ------------------------------------------------------------------ kinds
    def _record_training_settings(self, dropped: DroppedFile, kind: DatasetSettingsFile) -> dict[str, Any]:
        with self._blobs.open(dropped.key, dropped.version_id) as f:
            body = f.read(MAX_SETTINGS_BYTES + 1)
        settings = parse_training_settings(body)
        self._settings.cost_limits.check_training_settings(settings)
        self._state.record_training_settings(kind.dataset, settings, dropped.key, dropped.version)
        self._state.record_file(dropped.key, dropped.version, FileStatus.SETTINGS_RECORDED)
        logger.info("training settings recorded", extra={"dataset": kind.dataset, "settings": settings})
        return {"status": "training settings recorded", "dataset": kind.dataset}

    def record_failure(self, dropped: DroppedFile, reason: str) -> None:
        self._state.record_file(
            dropped.key,
            dropped.version,
            status=FileStatus.FAILED,
            reason=f"{reason} (message moved to the ingest dead-letter queue)",
        )

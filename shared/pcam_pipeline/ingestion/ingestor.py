"""A dropped file: validate it, quarantine it with a reason, or plan its conversion shards."""

from __future__ import annotations

from collections.abc import Callable

import boto3

from pcam_pipeline.aws import storage
from pcam_pipeline.aws.events import EventPublisher
from pcam_pipeline.aws.observability import logger
from pcam_pipeline.core import keys
from pcam_pipeline.core.errors import InvalidInput, MisroutedEvent
from pcam_pipeline.core.keys import (
    DatasetFile,
    DatasetSettingsFile,
    DroppedFile,
    SlideFile,
    SlideSidecarFile,
    WholeSlideFile,
)
from pcam_pipeline.core.records import IMAGE_FIELDS, LABEL_FIELDS, PatchOwner, SlideRecord, SplitRecord
from pcam_pipeline.core.settings import IngestSettings
from pcam_pipeline.core.statuses import FileStatus, OwnerStatus
from pcam_pipeline.ingestion.completion import Completer
from pcam_pipeline.ingestion.hdf5_input import (
    FileLimits,
    PatchFileInfo,
    check_counts_agree,
    inspect_patches,
    open_hdf5,
    read_labels,
)
from pcam_pipeline.ingestion.patches import image_shape
from pcam_pipeline.ingestion.quarantine import quarantine
from pcam_pipeline.ingestion.shard_planning import PatchSource, ShardPlanner, decided_from
from pcam_pipeline.ingestion.training_settings import MAX_BYTES as MAX_SETTINGS_BYTES
from pcam_pipeline.ingestion.training_settings import parse_training_settings
from pcam_pipeline.scoring.batches import check_slide_fits_one_job
from pcam_pipeline.state import StateStore, slide_pk, split_pk
from pcam_pipeline.wsi.ingestion import WholeSlideIngestion


def _replaces_announced_pair(current: PatchOwner, partner_count: int | None, count: int) -> bool:
    """A new file of a split already announced, whose partner has another count, starts a new pair.

    The old partner is forgotten and the split waits for a matching one (a lab re-dropping a
    whole split with more patches); until a split is announced, disagreeing counts are an error.
    """
    return current.status is OwnerStatus.READY and partner_count not in (None, count)


class Ingestor:
    def __init__(
        self,
        settings: IngestSettings,
        s3=None,
        state: StateStore | None = None,
        publisher: EventPublisher | None = None,
        sqs=None,
    ):
        conversion = settings.conversion
        self._settings = settings
        self._bucket = conversion.bucket
        self._s3 = s3 or storage.s3_client()
        self._state = state or StateStore(conversion.state_table)
        # The edge of the JPEGs written (Split Ready tells training the image shape).
        self._image_edge = {"image_edge": image_shape(conversion.resize_to)[1]}
        self._planner = ShardPlanner(
            self._state, sqs or boto3.client("sqs"), settings.convert_queue_url, settings.patches_per_shard
        )
        self._limits = FileLimits(max_patches=conversion.max_patches_per_file)
        self._completer = Completer(
            self._bucket, self._s3, self._state, publisher or EventPublisher(conversion.event_bus), self._limits
        )
        self._whole_slides = WholeSlideIngestion(conversion, self._s3, self._state, self._planner, self._image_edge)

    def ingest_attempt(self, dropped: DroppedFile, attempt: int, ingest: Callable[[], dict]) -> dict:
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
                return quarantine(self._s3, self._bucket, self._state, dropped, problem)
            return ingest()
        finally:
            self._state.close_attempt(dropped.key, dropped.version, attempt)

    def _located(self, dropped: DroppedFile) -> DroppedFile | None:
        """The upload as stored: its key as the event spelled it when the event did not URL-encode it."""
        for candidate in dict.fromkeys([dropped, dropped.as_spelled_in_event()]):
            if storage.object_exists(self._s3, self._bucket, candidate.key, candidate.version_id):
                return candidate
        return None

    def ingest(self, dropped: DroppedFile) -> dict:
        if dropped.bucket != self._bucket:
            raise MisroutedEvent(f"event for bucket {dropped.bucket!r}; this pipeline owns {self._bucket!r}")
        logger.append_keys(file_key=dropped.key, file_version=dropped.version)
        located = self._located(dropped)
        if located is None:
            # A late duplicate of an event for a file already quarantined, or one deleted meanwhile.
            logger.info("the dropped file is no longer there; nothing to do")
            return {"status": "gone"}
        dropped = located
        self._state.record_file_received(dropped.key, dropped.version)
        latest = storage.latest_version(self._s3, self._bucket, dropped.key)
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
            return quarantine(self._s3, self._bucket, self._state, dropped, problem)

    def _ingest_upload(self, dropped: DroppedFile) -> dict:
        kind = keys.classify_incoming_key(dropped.key)
        if isinstance(kind, DatasetSettingsFile):
            return self._record_training_settings(dropped, kind)
        if isinstance(kind, WholeSlideFile):
            return self._whole_slides.ingest(dropped, kind)
        if isinstance(kind, SlideSidecarFile):
            return self._whole_slides.record_sidecar(dropped, kind)
        source_key, source_version = self._source_of(dropped, kind.compressed)
        if isinstance(kind, SlideFile):
            return self._ingest_slide(dropped, kind, source_key, source_version)
        if kind.role == "x":
            return self._ingest_dataset_images(dropped, kind, source_key, source_version)
        return self._ingest_dataset_labels(dropped, kind, source_key, source_version)

    # ------------------------------------------------------------------ sources
    def _source_of(self, dropped: DroppedFile, compressed: bool) -> tuple[str, str | None]:
        """The object to read HDF5 from: the upload itself, or its decompressed copy in staging/."""
        if not compressed:
            return dropped.key, dropped.version_id
        target = keys.staged_key(dropped.key)
        storage.decompress_to(
            self._s3, self._bucket, dropped.key, dropped.version_id, target, self._settings.max_uncompressed_bytes
        )
        head = self._s3.head_object(Bucket=self._bucket, Key=target)
        self._state.record_file(dropped.key, dropped.version, status=FileStatus.STAGED, staged_key=target)
        return target, head.get("VersionId")

    def _open(self, key: str, version: str | None):
        return storage.S3RangeFile(self._s3, self._bucket, key, version)

    def _inspect_patches(self, key: str, version: str | None) -> PatchFileInfo:
        with self._open(key, version) as f, open_hdf5(f, f.size) as handle:
            return inspect_patches(handle, self._limits)

    # ------------------------------------------------------------------ kinds
    def _record_training_settings(self, dropped: DroppedFile, kind: DatasetSettingsFile) -> dict:
        with self._open(dropped.key, dropped.version_id) as f:
            body = f.read(MAX_SETTINGS_BYTES + 1)
        settings = parse_training_settings(body)
        self._state.record_training_settings(kind.dataset, settings, dropped.key, dropped.version)
        self._state.record_file(dropped.key, dropped.version, FileStatus.SETTINGS_RECORDED)
        logger.info("training settings recorded", extra={"dataset": kind.dataset, "settings": settings})
        return {"status": "training settings recorded", "dataset": kind.dataset}

    def _ingest_dataset_images(self, dropped, kind: DatasetFile, source_key, source_version) -> dict:
        owner = split_pk(kind.dataset, kind.split)
        info = None
        for current in decided_from(lambda: self._state.split(kind.dataset, kind.split) or SplitRecord()):
            if current.x_run == dropped.run_id:
                return {"status": "already planned", "owner": owner}
            if info is None:
                info = self._inspect_patches(source_key, source_version)
            labels_are_stale = _replaces_announced_pair(current, current.y_count, info.count)
            if current.y_count is not None and not labels_are_stale:
                check_counts_agree(info.count, current.y_count, arrived="images")
            prefix = keys.dataset_image_prefix(kind.dataset, kind.split, dropped.run_id)
            source = PatchSource(source_key, source_version, info.count, info.storage, prefix)
            fields = {"kind": "split", "dataset": kind.dataset, "split": kind.split, "has_coords": False}
            forget = LABEL_FIELDS if labels_are_stale else ()
            planned = self._planner.plan(dropped, owner, source, {**fields, **self._image_edge}, current, forget)
            if planned:
                return planned

    def _ingest_slide(self, dropped, kind: SlideFile, source_key, source_version) -> dict:
        owner = slide_pk(kind.slide_id)
        info = None
        for current in decided_from(lambda: self._state.slide(kind.slide_id) or SlideRecord()):
            if current.x_run == dropped.run_id:
                return {"status": "already planned", "owner": owner}
            if info is None:
                info = self._inspect_patches(source_key, source_version)
                check_slide_fits_one_job(info.count, self._settings.conversion.max_patches_per_slide)
            prefix = keys.slide_image_prefix(kind.slide_id, dropped.run_id)
            source = PatchSource(source_key, source_version, info.count, info.storage, prefix)
            fields = {"kind": "slide", "slide_id": kind.slide_id, "has_coords": info.has_coords}
            whole_slide_fields = ("tile_plan_key", "sidecar_version")  # of an earlier whole-slide upload
            planned = self._planner.plan(
                dropped, owner, source, {**fields, **self._image_edge}, current, forget=whole_slide_fields
            )
            if planned:
                return planned

    def _ingest_dataset_labels(self, dropped, kind: DatasetFile, source_key, source_version) -> dict:
        owner = split_pk(kind.dataset, kind.split)
        labels = None
        for current in decided_from(lambda: self._state.split(kind.dataset, kind.split) or SplitRecord()):
            if current.y_version == dropped.version:
                break  # recorded by an earlier delivery
            if labels is None:
                with self._open(source_key, source_version) as f, open_hdf5(f, f.size) as handle:
                    labels = read_labels(handle, self._limits)
            images_are_stale = _replaces_announced_pair(current, current.x_count, int(labels.size))
            if current.x_count is not None and not images_are_stale and current.status is not OwnerStatus.FAILED:
                check_counts_agree(current.x_count, int(labels.size), arrived="labels")
            recorded = self._state.record_labels(
                owner,
                as_read=current,
                forget=IMAGE_FIELDS if images_are_stale else (),
                fields={
                    "kind": "split",
                    "dataset": kind.dataset,
                    "split": kind.split,
                    "y_key": dropped.key,
                    "y_version": dropped.version,
                    "y_source_key": source_key,
                    "y_source_version": source_version,
                    "y_count": int(labels.size),
                    "y_tumour_count": int(labels.sum()),
                },
            )
            if recorded:
                self._state.record_file(
                    dropped.key, dropped.version, status=FileStatus.LABELS_RECORDED, label_count=int(labels.size)
                )
                break
        # The same upload may finish what an earlier delivery of it started (retry or redrive).
        announced = self._completer.complete_if_ready(owner, f"labels {dropped.key}#{dropped.version}")
        return {"status": "labels recorded", "owner": owner, "announced": announced}

    def record_failure(self, dropped: DroppedFile, reason: str) -> None:
        self._state.record_file(
            dropped.key,
            dropped.version,
            status=FileStatus.FAILED,
            reason=f"{reason} (message moved to the ingest dead-letter queue)",
        )

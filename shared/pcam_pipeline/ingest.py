"""A dropped file: validate it, quarantine it with a reason, or plan its conversion shards."""

from __future__ import annotations

import json

import boto3

from pcam_pipeline import keys, storage
from pcam_pipeline.completion import Completer
from pcam_pipeline.errors import InvalidInput, RetryableError
from pcam_pipeline.events import EventPublisher
from pcam_pipeline.hdf5_input import check_counts_agree, inspect_patches, open_hdf5, read_labels
from pcam_pipeline.keys import DatasetFile, DroppedFile, SlideFile
from pcam_pipeline.observability import logger, metrics
from pcam_pipeline.patches import image_shape
from pcam_pipeline.records import IMAGE_FIELDS, LABEL_FIELDS, FileStatus, OwnerStatus, PatchOwner, SplitRecord
from pcam_pipeline.settings import IngestSettings
from pcam_pipeline.state import StateStore, now_iso, slide_pk, split_pk

SQS_BATCH = 10


def plan_shards(count: int, patches_per_shard: int) -> list[tuple[int, int]]:
    """Split [0, count) into consecutive [start, stop) ranges of at most ``patches_per_shard``."""
    return [(start, min(start + patches_per_shard, count)) for start in range(0, count, patches_per_shard)]


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
        self._sqs = sqs or boto3.client("sqs")
        self._completer = Completer(
            self._bucket, self._s3, self._state, publisher or EventPublisher(conversion.event_bus)
        )

    def ingest(self, dropped: DroppedFile, claimer: str) -> dict:
        if dropped.bucket != self._bucket:
            raise RetryableError(f"event for bucket {dropped.bucket!r}; this pipeline owns {self._bucket!r}")
        logger.append_keys(file_key=dropped.key, file_version=dropped.version)
        if not storage.object_exists(self._s3, self._bucket, dropped.key, dropped.version_id):
            spelled = dropped.as_spelled_in_event()
            if spelled.key == dropped.key or not storage.object_exists(
                self._s3, self._bucket, spelled.key, spelled.version_id
            ):
                # A late duplicate of an event for a file already quarantined, or one deleted meanwhile.
                logger.info("the dropped file is no longer there; nothing to do")
                return {"status": "gone"}
            dropped = spelled  # the event did not URL-encode this key
        self._state.record_file_received(dropped.key, dropped.version)
        try:
            kind = keys.classify_incoming_key(dropped.key)
            source_key, source_version = self._source_of(dropped, kind.compressed)
            if isinstance(kind, SlideFile):
                return self._ingest_slide(dropped, kind, source_key, source_version)
            if kind.role == "x":
                return self._ingest_dataset_images(dropped, kind, source_key, source_version)
            return self._ingest_dataset_labels(dropped, kind, source_key, source_version, claimer)
        except InvalidInput as problem:
            return self.quarantine(dropped, problem)

    # ------------------------------------------------------------------ sources
    def _source_of(self, dropped: DroppedFile, compressed: bool) -> tuple[str, str | None]:
        """The object to read HDF5 from: the upload itself, or its decompressed copy in staging/."""
        if not compressed:
            return dropped.key, dropped.version_id
        target = keys.staged_key(dropped.key)
        storage.decompress_to(self._s3, self._bucket, dropped.key, dropped.version_id, target)
        head = self._s3.head_object(Bucket=self._bucket, Key=target)
        self._state.record_file(dropped.key, dropped.version, status=FileStatus.STAGED, staged_key=target)
        return target, head.get("VersionId")

    def _open(self, key: str, version: str | None):
        return storage.S3RangeFile(self._s3, self._bucket, key, version)

    # ------------------------------------------------------------------ kinds
    def _ingest_dataset_images(self, dropped, kind: DatasetFile, source_key, source_version) -> dict:
        owner = split_pk(kind.dataset, kind.split)
        current = self._state.split(kind.dataset, kind.split) or SplitRecord()
        if current.x_run == dropped.run_id:
            return {"status": "already planned", "owner": owner}
        with self._open(source_key, source_version) as f, open_hdf5(f, f.size) as handle:
            info = inspect_patches(handle)
        labels_are_stale = _replaces_announced_pair(current, current.y_count, info.count)
        if current.y_count is not None and not labels_are_stale:
            check_counts_agree(info.count, current.y_count, arrived="images")
        prefix = keys.dataset_image_prefix(kind.dataset, kind.split, dropped.run_id)
        fields = {"kind": "split", "dataset": kind.dataset, "split": kind.split, "has_coords": False}
        return self._plan(
            dropped,
            owner,
            fields,
            info,
            source_key,
            source_version,
            prefix,
            forget=LABEL_FIELDS if labels_are_stale else (),
        )

    def _ingest_slide(self, dropped, kind: SlideFile, source_key, source_version) -> dict:
        owner = slide_pk(kind.slide_id)
        current = self._state.slide(kind.slide_id)
        if current and current.x_run == dropped.run_id:
            return {"status": "already planned", "owner": owner}
        with self._open(source_key, source_version) as f, open_hdf5(f, f.size) as handle:
            info = inspect_patches(handle)
        prefix = keys.slide_image_prefix(kind.slide_id, dropped.run_id)
        fields = {"kind": "slide", "slide_id": kind.slide_id, "has_coords": info.has_coords}
        return self._plan(dropped, owner, fields, info, source_key, source_version, prefix)

    def _ingest_dataset_labels(self, dropped, kind: DatasetFile, source_key, source_version, claimer) -> dict:
        owner = split_pk(kind.dataset, kind.split)
        current = self._state.split(kind.dataset, kind.split) or SplitRecord()
        if current.y_version != dropped.version:
            with self._open(source_key, source_version) as f, open_hdf5(f, f.size) as handle:
                labels = read_labels(handle)
            images_are_stale = _replaces_announced_pair(current, current.x_count, int(labels.size))
            if current.x_count is not None and not images_are_stale and current.status is not OwnerStatus.FAILED:
                check_counts_agree(current.x_count, int(labels.size), arrived="labels")
            self._state.record_labels(
                owner,
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
            self._state.record_file(
                dropped.key, dropped.version, status=FileStatus.LABELS_RECORDED, label_count=int(labels.size)
            )
        announced = self._completer.complete_if_ready(owner, claimer)
        return {"status": "labels recorded", "owner": owner, "announced": announced}

    def _plan(self, dropped, owner, fields, info, source_key, source_version, prefix, forget=()) -> dict:
        shards = plan_shards(info.count, self._settings.patches_per_shard)
        self._state.start_patch_conversion(
            owner,
            forget=forget,
            fields={
                **fields,
                "x_key": dropped.key,
                "x_version": dropped.version,
                "x_source_key": source_key,
                "x_source_version": source_version,
                "x_run": dropped.run_id,
                "x_count": info.count,
                "shards_total": len(shards),
                "image_prefix": prefix,
                "image_edge": image_shape(self._settings.conversion.resize_to)[1],
                "storage": info.storage,
            },
        )
        messages = [
            {
                "owner": owner,
                "run_id": dropped.run_id,
                "shard": index,
                "start": start,
                "stop": stop,
                "source_key": source_key,
                "source_version": source_version,
                "image_prefix": prefix,
                "file_key": dropped.key,
                "file_version": dropped.version,
            }
            for index, (start, stop) in enumerate(shards)
        ]
        self._enqueue(messages)
        self._state.record_file(
            dropped.key,
            dropped.version,
            status=FileStatus.CONVERTING,
            run_id=dropped.run_id,
            patch_count=info.count,
            shards=len(shards),
            owner=owner,
        )
        metrics.add_metric(name="ShardsPlanned", unit="Count", value=len(shards))
        logger.info(
            "planned conversion",
            extra={"owner": owner, "patches": info.count, "shards": len(shards), "storage": info.storage},
        )
        return {"status": "converting", "owner": owner, "patches": info.count, "shards": len(shards)}

    def _enqueue(self, messages: list[dict]) -> None:
        for first in range(0, len(messages), SQS_BATCH):
            batch = messages[first : first + SQS_BATCH]
            entries = [{"Id": str(i), "MessageBody": json.dumps(m)} for i, m in enumerate(batch)]
            response = self._sqs.send_message_batch(QueueUrl=self._settings.convert_queue_url, Entries=entries)
            if response.get("Failed"):
                raise RetryableError(f"could not enqueue shards: {response['Failed']}")

    # ------------------------------------------------------------------ quarantine
    def quarantine(self, dropped: DroppedFile, problem: InvalidInput) -> dict:
        """Move the upload to quarantine/ with a plain explanation beside it; nothing is lost."""
        target = keys.quarantine_key(dropped.key)
        error = {
            "key": dropped.key,
            "version": dropped.version,
            "error": problem.describe(),
            **problem.as_dict(),
            "quarantined_at": now_iso(),
            "quarantined_as": target,
        }
        storage.put_json(self._s3, self._bucket, keys.quarantine_error_key(dropped.key), error)
        storage.move_object(self._s3, self._bucket, dropped.key, dropped.version_id, target)
        self._state.record_file(
            dropped.key,
            dropped.version,
            status=FileStatus.QUARANTINED,
            reason=problem.describe(),
            quarantine_key=target,
        )
        metrics.add_metric(name="FilesQuarantined", unit="Count", value=1)
        logger.warning("quarantined", extra={"reason": problem.describe()})
        return {"status": "quarantined", "reason": problem.describe(), "quarantine_key": target}

    def record_failure(self, dropped: DroppedFile, reason: str) -> None:
        self._state.record_file(
            dropped.key,
            dropped.version,
            status=FileStatus.FAILED,
            reason=f"{reason} (message moved to the ingest dead-letter queue)",
        )

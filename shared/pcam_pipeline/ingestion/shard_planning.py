"""Fanning a dropped patch file out into conversion shards: one queue message per slice of patches."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

from pcam_pipeline.aws.observability import logger, metrics
from pcam_pipeline.core.dropped_files import DroppedFile
from pcam_pipeline.core.errors import RetryableError
from pcam_pipeline.core.ports import BlobStore, MessageQueue
from pcam_pipeline.core.records import PatchOwner, present
from pcam_pipeline.core.statuses import FileStatus
from pcam_pipeline.state.ingestion_views import PlanningState

# Reads and decisions a delivery makes before it gives up on a split that other deliveries keep changing.
DECISION_ATTEMPTS = 5


def decided_from[Owner: PatchOwner](read_owner: Callable[[], Owner]) -> Iterator[Owner]:
    """Reads of the owner to decide from: again after a concurrent delivery changed its inputs. After
    ``DECISION_ATTEMPTS`` the caller gives up with ``kept_changing()``."""
    for _ in range(DECISION_ATTEMPTS):
        yield read_owner()


def kept_changing() -> RetryableError:
    return RetryableError("other uploads kept changing this split or slide while this file was ingested")


def plan_shards(count: int, patches_per_shard: int) -> list[tuple[int, int]]:
    """Split [0, count) into consecutive [start, stop) ranges of at most ``patches_per_shard``."""
    return [(start, min(start + patches_per_shard, count)) for start in range(0, count, patches_per_shard)]


@dataclass(frozen=True)
class ShardTask:
    """The message a conversion shard receives: which patches of which object, written where."""

    owner: str
    run_id: str
    shard: int
    start: int
    stop: int
    source_key: str
    source_version: str | None
    image_prefix: str
    file_key: str
    file_version: str
    file_version_id: str | None = None  # the S3 version to quarantine if the file turns out damaged
    tile_plan_key: str | None = None  # a whole-slide image: the tiles to cut (patch indices are its tiles)
    stain_normalisation: str = "none"  # StainNormalisation when the upload was planned: every shard alike

    @classmethod
    def from_message(cls, body: dict[str, Any]) -> ShardTask:
        return cls(**{name: body[name] for name in cls.__dataclass_fields__ if name in body})

    @property
    def claimer(self) -> str:
        """Who may finish this upload's announcement: the same shard again, whatever SQS message carries it
        (a retry, or a redrive from the dead-letter queue with a new message id)."""
        return f"shard {self.shard} of run {self.run_id}"


@dataclass(frozen=True)
class PatchSource:
    """The HDF5 object a dropped file's patches are read from, and where their JPEGs go."""

    key: str
    version: str | None
    count: int
    storage: str
    image_prefix: str
    tile_plan_key: str | None = None
    stain_normalisation: str = "none"

    @classmethod
    def planned_for(cls, owner: PatchOwner) -> PatchSource:
        """The source the owner's current upload was planned with."""
        return cls(present(owner.x_source_key, "source"), owner.x_source_version, present(owner.x_count, "count"),
                   owner.storage or "", present(owner.image_prefix, "image prefix"),
                   getattr(owner, "tile_plan_key", None), owner.x_stain_normalisation)  # fmt: skip


class ShardPlanner:
    def __init__(
        self,
        state: PlanningState,
        queue: MessageQueue,
        patches_per_shard: int,
        blobs: BlobStore,
        stain_normalisation: str = "none",
    ):
        self._state, self._queue, self._patches_per_shard, self._blobs = state, queue, patches_per_shard, blobs
        self._stain_normalisation = stain_normalisation

    def superseded(self, dropped: DroppedFile) -> dict[str, Any] | None:
        """Newest wins, checked again before each write of a decision: a newer upload of the key that arrived
        while this one was read (minutes, for a whole slide) is never replaced by it. None if still newest.

        A key with no current version (this upload was quarantined, or deleted) has no newer upload to protect."""
        latest = self._blobs.latest_version(dropped.key)
        if latest is None or dropped.version_id is None or latest == dropped.version_id:
            return None
        reason = f"upload {latest} of this key replaced it while it was read"
        self._state.record_file(dropped.key, dropped.version, FileStatus.SUPERSEDED, reason=reason)
        logger.info("a newer upload of this key arrived meanwhile; not converted", extra={"latest_version": latest})
        return {"status": "superseded", "latest_version": latest}

    def plan(
        self,
        dropped: DroppedFile,
        owner: str,
        source: PatchSource,
        fields: dict[str, Any],
        as_read: PatchOwner,
        forget: tuple[str, ...] = (),
    ) -> dict[str, Any] | None:
        """Make this upload the owner's current images and enqueue one message per shard.

        None (nothing planned) if the owner's inputs changed since ``as_read`` was read."""
        if newer := self.superseded(dropped):
            return newer
        source = replace(source, stain_normalisation=self._stain_normalisation)
        shards = plan_shards(source.count, self._patches_per_shard)
        planned = self._state.start_patch_conversion(
            owner,
            as_read=as_read,
            forget=forget,
            fields={
                **fields,
                "x_key": dropped.key,
                "x_version": dropped.version,
                "x_version_id": dropped.version_id,
                "x_sequencer": dropped.sequencer or None,
                "x_source_key": source.key,
                "x_source_version": source.version,
                "x_run": dropped.run_id,
                "x_count": source.count,
                "shards_total": len(shards),
                "image_prefix": source.image_prefix,
                "storage": source.storage,
                "x_stain_normalisation": source.stain_normalisation,
            },
        )
        if not planned:
            return None
        return self._send_shards(dropped, owner, source)

    def finish(self, dropped: DroppedFile, owner: str, current: PatchOwner) -> dict[str, Any]:
        """This upload was planned already: send its shards again unless they were sent (a retry after a failed
        send would otherwise leave the upload planned and never converted). A shard sent twice converts once."""
        if current.shards_sent == current.x_run:
            return {"status": "already planned", "owner": owner}
        return self._send_shards(dropped, owner, PatchSource.planned_for(current))

    def _send_shards(self, dropped: DroppedFile, owner: str, source: PatchSource) -> dict[str, Any]:
        shards = plan_shards(source.count, self._patches_per_shard)
        tasks = [
            ShardTask(
                owner,
                dropped.run_id,
                index,
                start,
                stop,
                source.key,
                source.version,
                source.image_prefix,
                dropped.key,
                dropped.version,
                dropped.version_id,
                source.tile_plan_key,
                source.stain_normalisation,
            )  # fmt: skip
            for index, (start, stop) in enumerate(shards)
        ]
        self._queue.send([json.dumps(asdict(task)) for task in tasks])
        self._state.record_file(
            dropped.key,
            dropped.version,
            FileStatus.CONVERTING,
            run_id=dropped.run_id,
            patch_count=source.count,
            shards=len(shards),
            owner=owner,
        )
        self._state.mark_shards_sent(owner, dropped.run_id)  # last: a retry before it sends (and records) again
        metrics.add_metric(name="ShardsPlanned", unit="Count", value=len(shards))
        logger.info(
            "planned conversion",
            extra={"owner": owner, "patches": source.count, "shards": len(shards), "storage": source.storage},
        )
        return {"status": "converting", "owner": owner, "patches": source.count, "shards": len(shards)}

"""What each use case of ingestion and conversion may read and write in the state table: one Protocol per use
case, the methods of ``StateStore`` it calls and no others (as ``views`` does for the model side). The two
composition roots, ``Ingestor`` and ``ShardConverter``, take a whole ``StateStore`` to hand each part its
view, and type their own use of it as theirs.
"""

from __future__ import annotations

from typing import Any, Protocol

from pcam_pipeline.core.records import FileRecord, PatchOwner, SlideRecord, SplitRecord
from pcam_pipeline.core.statuses import FileStatus
from pcam_pipeline.state.leases import Lease


class FilesState(Protocol):
    """What every part records of a dropped file, and how it sets one aside (quarantine)."""

    def record_file(self, key: str, version: str, status: FileStatus, **fields: Any) -> None: ...

    def file_version(self, key: str, version: str) -> FileRecord | None: ...

    def record_quarantine(
        self, key: str, version: str, reason: str, quarantine_key: str, event: dict[str, Any]
    ) -> bool: ...

    def claim_quarantine_announcement(self, key: str, version: str) -> Lease | None: ...

    def release_quarantine_announcement(self, key: str, version: str, lease: Lease) -> None: ...

    def mark_quarantine_announced(self, key: str, version: str) -> None: ...


class IngestorState(FilesState, Protocol):
    """What the ingest use case itself reads and writes: delivery attempts, superseded uploads, settings."""

    def open_attempt(self, key: str, version: str, attempt: int) -> int: ...

    def close_attempt(self, key: str, version: str, attempt: int) -> None: ...

    def record_file_received(self, key: str, version: str) -> None: ...

    def record_file_superseded(self, key: str, version: str, reason: str) -> bool: ...

    def record_training_settings(self, dataset: str, settings: dict[str, Any], key: str, version: str) -> None: ...


class PatchFilesState(FilesState, Protocol):
    """What an HDF5 upload's ingestion reads and writes (its planning and announcement have their own)."""

    def split(self, dataset: str, split: str) -> SplitRecord | None: ...

    def slide(self, slide_id: str) -> SlideRecord | None: ...

    def record_labels(
        self, owner_pk: str, fields: dict[str, Any], as_read: SplitRecord, forget: tuple[str, ...] = ()
    ) -> bool: ...


class WholeSlidesState(FilesState, Protocol):
    """What a whole-slide image's ingestion and its sidecars read and write."""

    def slide(self, slide_id: str) -> SlideRecord | None: ...

    def slide_sidecar(self, slide_id: str) -> dict[str, Any] | None: ...

    def record_slide_sidecar(self, slide_id: str, mpp: float, key: str, version: str) -> None: ...

    def slide_awaiting_mpp(self, slide_id: str) -> dict[str, Any] | None: ...

    def record_slide_awaiting_mpp(
        self, slide_id: str, key: str, version_id: str | None, quarantine_key: str
    ) -> None: ...

    def forget_slide_awaiting_mpp(self, slide_id: str) -> None: ...


class PlanningState(FilesState, Protocol):
    """What shard planning writes: the owner's current upload, conditional on the owner as read."""

    def start_patch_conversion(
        self, owner_pk: str, fields: dict[str, Any], as_read: PatchOwner, forget: tuple[str, ...] = ()
    ) -> bool: ...

    def mark_shards_sent(self, owner_pk: str, run_id: str) -> None: ...


class CompletionState(FilesState, Protocol):
    """What the one announcement of a split or slide reads and writes."""

    def owner(self, owner_pk: str) -> SplitRecord | SlideRecord | None: ...

    def claim_ready(self, owner_pk: str, token: str, claimer: str) -> Lease | None: ...

    def release_ready(self, owner_pk: str, lease: Lease) -> None: ...

    def mark_ready(self, owner_pk: str, manifest_key: str, lease: Lease) -> bool: ...

    def mark_announced(self, owner_pk: str, token: str) -> None: ...

    def mark_failed(self, owner_pk: str, reason: str) -> None: ...


class ConversionState(FilesState, Protocol):
    """What a conversion shard itself records (its announcement is the Completer's)."""

    def record_shard_done(self, owner_pk: str, run_id: str, shard: int) -> dict[str, Any] | None: ...

    def record_shard_failed(self, owner_pk: str, run_id: str, shard: int, reason: str) -> None: ...

    def mark_damaged(self, owner_pk: str, run_id: str, shard: int, reason: str) -> bool: ...

"""Named reads and writes of the ingestion side: dropped files, and the conversion of splits and slides."""

from __future__ import annotations

from typing import Any

from pcam_pipeline.core.records import FileRecord, PatchOwner, SplitRecord
from pcam_pipeline.core.statuses import FileStatus, OwnerStatus
from pcam_pipeline.state.access import CURRENT, TableAccess, awaiting_mpp_pk, file_pk, sidecar_pk
from pcam_pipeline.state.conditions import Condition, Equals, Missing, Not
from pcam_pipeline.state.table import now_iso


def _holds(name: str, value: Any) -> Condition:
    return Missing(name) if value is None else Equals(name, value)


def inputs_as_read(record: PatchOwner) -> Condition:
    """The owner's images and labels are still the uploads ``record`` was read with.

    Ingestion decides from a read (counts agree, already planned) and then writes; a delivery that
    wrote in between makes the write fail, and the ingestion decides again from a new read."""
    return _holds("x_run", record.x_run) & _holds("y_version", getattr(record, "y_version", None))


class IngestionRecords(TableAccess):
    # ------------------------------------------------------------------ files
    def file_version(self, key: str, version: str) -> FileRecord | None:
        return FileRecord.from_item(self.get(file_pk(key), f"v#{version}"))

    def record_file(self, key: str, version: str, status: FileStatus, **fields: Any) -> None:
        self._set(file_pk(key), f"v#{version}", {"key": key, "version": version, "status": status, **fields})

    def record_quarantine(
        self, key: str, version: str, reason: str, quarantine_key: str, event: dict[str, Any]
    ) -> bool:
        """The upload is set aside for ``reason``; ``event`` stays recorded until it is published. False if a
        copy of this delivery quarantined it first: its decision stands."""
        fields = {"key": key, "version": version, "status": FileStatus.QUARANTINED, "reason": reason,
                  "quarantine_key": quarantine_key, "unannounced_quarantine": event}  # fmt: skip
        first = Not(Equals("status", FileStatus.QUARANTINED))
        return self._set(file_pk(key), f"v#{version}", fields, first) is not None

    def record_file_received(self, key: str, version: str) -> None:
        """First sight of an upload; a repeated event (a redrive, another notification) changes nothing."""
        fields = {"key": key, "version": version, "status": FileStatus.RECEIVED, "received_at": now_iso()}
        self._set(file_pk(key), f"v#{version}", fields, condition=Missing("status"))

    def open_attempt(self, key: str, version: str, attempt: int) -> int:
        """Note that delivery ``attempt`` starts reading the upload; how many earlier attempts never finished.

        An attempt that ends, however it ends, closes its entry; only a process that died (a crash in the
        HDF5 library, a timeout, running out of memory) leaves one open."""
        fields = {"key": key, "version": version, "open_attempts": {}}
        self._set(file_pk(key), f"v#{version}", fields, Missing("open_attempts"))  # the first attempt
        item = self._set(
            file_pk(key), f"v#{version}", {}, map_entry=("open_attempts", str(attempt), now_iso()), return_new=True
        )
        return sum(1 for earlier in (item or {}).get("open_attempts", {}) if int(earlier) < attempt)

    def close_attempt(self, key: str, version: str, attempt: int) -> None:
        self._set(file_pk(key), f"v#{version}", {}, map_entry_removed=("open_attempts", str(attempt)))

    def record_file_superseded(self, key: str, version: str, reason: str) -> bool:
        """Mark an upload that a newer one (or a delete) replaced before it was handled; False if it had been
        handled already (quarantined, converted: a repeated event must not rewrite what happened to it)."""
        fields = {"status": FileStatus.SUPERSEDED, "reason": reason}
        return (
            self._set(file_pk(key), f"v#{version}", fields, condition=Equals("status", FileStatus.RECEIVED)) is not None
        )

    # ------------------------------------------------------- whole-slide images
    def record_slide_sidecar(self, slide_id: str, mpp: float, key: str, version: str) -> None:
        self._set(sidecar_pk(slide_id), CURRENT, {"slide_id": slide_id, "mpp": mpp, "key": key, "version": version})

    def slide_sidecar(self, slide_id: str) -> dict[str, Any] | None:
        item = self.get(sidecar_pk(slide_id), CURRENT)
        return {**item, "mpp": float(item["mpp"])} if item else None

    def record_slide_awaiting_mpp(self, slide_id: str, key: str, version_id: str | None, quarantine_key: str) -> None:
        fields = {"slide_id": slide_id, "key": key, "version_id": version_id, "quarantine_key": quarantine_key}
        self._set(awaiting_mpp_pk(slide_id), CURRENT, fields)

    def slide_awaiting_mpp(self, slide_id: str) -> dict[str, Any] | None:
        return self.get(awaiting_mpp_pk(slide_id), CURRENT)

    def forget_slide_awaiting_mpp(self, slide_id: str) -> None:
        self._delete(awaiting_mpp_pk(slide_id), CURRENT)

    # ------------------------------------------------------- splits and slides
    def start_patch_conversion(
        self, owner_pk: str, fields: dict[str, Any], as_read: PatchOwner, forget: tuple[str, ...] = ()
    ) -> bool:
        """Make this upload the owner's current images; progress of any earlier upload is dropped.

        False (nothing written) if the owner's inputs changed since ``as_read`` was read."""
        written = self._set(
            owner_pk,
            CURRENT,
            {**fields, "status": OwnerStatus.CONVERTING, "failed_shards": {}},
            condition=inputs_as_read(as_read),
            remove=("shards_done", "shards_sent", "ready_token", "ready_claimer", "failure", "damaged", *forget),
        )
        return written is not None

    def record_labels(
        self, owner_pk: str, fields: dict[str, Any], as_read: SplitRecord, forget: tuple[str, ...] = ()
    ) -> bool:
        """Make this upload the split's current labels; False if its inputs changed since ``as_read``."""
        status = {"status": OwnerStatus.WAITING_FOR_IMAGES} if forget else {}
        written = self._set(
            owner_pk,
            CURRENT,
            {**fields, **status},
            condition=inputs_as_read(as_read),
            remove=("ready_token", "ready_claimer", *forget),
        )
        return written is not None

    def mark_shards_sent(self, owner_pk: str, run_id: str) -> None:
        """The run's shard messages are on the queue (a retry of its planning need not send them again)."""
        self._set(owner_pk, CURRENT, {"shards_sent": run_id}, condition=Equals("x_run", run_id))

    def record_shard_done(self, owner_pk: str, run_id: str, shard: int) -> dict[str, Any] | None:
        """Count a finished shard (a set, so repeats count once); None if the upload was superseded.

        A shard that failed before (its message dead-lettered, then redriven) is no longer a failure."""
        return self._set(
            owner_pk,
            CURRENT,
            {},
            condition=Equals("x_run", run_id),
            add={"shards_done": {shard}},
            map_entry_removed=("failed_shards", str(shard)),
            return_new=True,
        )

    def record_shard_failed(self, owner_pk: str, run_id: str, shard: int, reason: str) -> None:
        self._set(
            owner_pk,
            CURRENT,
            {"status": OwnerStatus.FAILED, "failure": f"shard {shard} failed: {reason}"},
            condition=Equals("x_run", run_id),
            map_entry=("failed_shards", str(shard), reason),
        )

    def mark_damaged(self, owner_pk: str, run_id: str, shard: int, reason: str) -> bool:
        """The upload's data cannot be read; True for the first shard to find out (it quarantines the file), and
        again for that shard's retries, which finish a quarantine it could not."""
        fields = {"status": OwnerStatus.FAILED, "failure": f"the file is damaged: {reason}", "damaged": shard}
        first_or_same = Missing("damaged") | Equals("damaged", shard)
        return self._set(owner_pk, CURRENT, fields, Equals("x_run", run_id) & first_or_same) is not None

    def mark_failed(self, owner_pk: str, reason: str) -> None:
        self._set(owner_pk, CURRENT, {"status": OwnerStatus.FAILED, "failure": reason})

"""HDF5 uploads: a split's images or labels, or a slide's patches. Each is decided on a read of its owner's
record and written only if that record is unchanged (concurrent deliveries and the other file of a pair may
be at work), then planned as shards or, for labels, recorded and announced once the images are converted."""

from __future__ import annotations

from typing import Any

from pcam_pipeline.core import keys
from pcam_pipeline.core.dropped_files import DatasetFile, DroppedFile, SlideFile
from pcam_pipeline.core.ports import BlobStore
from pcam_pipeline.core.records import IMAGE_FIELDS, LABEL_FIELDS, PatchOwner, SlideRecord, SplitRecord
from pcam_pipeline.core.settings import ConversionSettings
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
from pcam_pipeline.ingestion.shard_planning import PatchSource, ShardPlanner, decided_from, kept_changing
from pcam_pipeline.scoring.batches import check_slide_fits_one_job
from pcam_pipeline.state import slide_pk, split_pk
from pcam_pipeline.state.ingestion_views import PatchFilesState


def _replaces_announced_pair(current: PatchOwner, partner_count: int | None, count: int) -> bool:
    """A new file of a split already announced, whose partner has another count, starts a new pair.

    The old partner is forgotten and the split waits for a matching one (a lab re-dropping a
    whole split with more patches); until a split is announced, disagreeing counts are an error.
    """
    return current.status is OwnerStatus.READY and partner_count not in (None, count)


class PatchFileIngestion:
    def __init__(
        self,
        settings: ConversionSettings,
        blobs: BlobStore,
        state: PatchFilesState,
        planner: ShardPlanner,
        completer: Completer,
        image_edge: dict[str, Any],
        limits: FileLimits,
    ):
        self._settings, self._blobs, self._state, self._planner = settings, blobs, state, planner
        self._completer, self._image_edge, self._limits = completer, image_edge, limits

    def ingest(
        self, dropped: DroppedFile, kind: SlideFile | DatasetFile, source_key: str, source_version: str | None
    ) -> dict[str, Any]:
        """``source_key`` and ``source_version`` name the object to read: the upload, or its staged copy."""
        if isinstance(kind, SlideFile):
            return self._slide(dropped, kind, source_key, source_version)
        if kind.role == "x":
            return self._dataset_images(dropped, kind, source_key, source_version)
        return self._dataset_labels(dropped, kind, source_key, source_version)

    def _inspect_patches(self, key: str, version: str | None) -> PatchFileInfo:
        with self._blobs.open(key, version) as f, open_hdf5(f, f.size) as handle:
            return inspect_patches(handle, self._limits)

    def _keep_coords(self, slide_id: str, run_id: str, info: PatchFileInfo) -> dict[str, Any]:
        """Copy the slide's coordinates out of the drop (whose staged copy expires) for every later scoring."""
        if info.coords is None:
            return {}
        key = keys.coords_key(slide_id, run_id)
        self._blobs.put_array(key, info.coords)
        return {"coords_key": key}

    def _dataset_images(
        self, dropped: DroppedFile, kind: DatasetFile, source_key: str, source_version: str | None
    ) -> dict[str, Any]:
        owner = split_pk(kind.dataset, kind.split)
        info = None
        for current in decided_from(lambda: self._state.split(kind.dataset, kind.split) or SplitRecord()):
            if current.x_run == dropped.run_id:
                return self._planner.finish(dropped, owner, current)
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
        raise kept_changing()

    def _slide(
        self, dropped: DroppedFile, kind: SlideFile, source_key: str, source_version: str | None
    ) -> dict[str, Any]:
        owner = slide_pk(kind.slide_id)
        info = None
        for current in decided_from(lambda: self._state.slide(kind.slide_id) or SlideRecord()):
            if current.x_run == dropped.run_id:
                return self._planner.finish(dropped, owner, current)
            if info is None:
                info = self._inspect_patches(source_key, source_version)
                check_slide_fits_one_job(info.count, self._settings.max_patches_per_slide)
                coords = self._keep_coords(kind.slide_id, dropped.run_id, info)
            prefix = keys.slide_image_prefix(kind.slide_id, dropped.run_id)
            source = PatchSource(source_key, source_version, info.count, info.storage, prefix)
            fields = {"kind": "slide", "slide_id": kind.slide_id, "has_coords": info.has_coords, **coords}
            earlier = ("tile_plan_key", "sidecar_version", *(() if coords else ("coords_key",)))  # of an older upload
            planned = self._planner.plan(dropped, owner, source, {**fields, **self._image_edge}, current, earlier)
            if planned:
                return planned
        raise kept_changing()

    def _dataset_labels(
        self, dropped: DroppedFile, kind: DatasetFile, source_key: str, source_version: str | None
    ) -> dict[str, Any]:
        owner = split_pk(kind.dataset, kind.split)
        labels = None
        for current in decided_from(lambda: self._state.split(kind.dataset, kind.split) or SplitRecord()):
            if current.y_version == dropped.version:
                break  # recorded by an earlier delivery
            if labels is None:
                with self._blobs.open(source_key, source_version) as f, open_hdf5(f, f.size) as handle:
                    labels = read_labels(handle, self._limits)
                labels_key = keys.labels_key(kind.dataset, kind.split, dropped.run_id)
                self._blobs.put_array(labels_key, labels)
            if newer := self._planner.superseded(dropped):
                return newer
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
                    "y_sequencer": dropped.sequencer or None,
                    "y_labels_key": labels_key,
                    "y_count": int(labels.size),
                    "y_tumour_count": int(labels.sum()),
                },
            )
            if recorded:
                break
        else:
            raise kept_changing()
        count = int(labels.size) if labels is not None else current.y_count  # by this or an earlier delivery
        self._state.record_file(dropped.key, dropped.version, status=FileStatus.LABELS_RECORDED, label_count=count)
        # The same upload may finish what an earlier delivery of it started (retry or redrive).
        announced = self._completer.complete_if_ready(owner, f"labels {dropped.key}#{dropped.version}")
        return {"status": "labels recorded", "owner": owner, "announced": announced}

"""Whole-slide images at ingestion and conversion: µm/px, the tile plan, sidecars, and cutting patches.

The slide stays where the lab dropped it: ingestion reads its header and one low-resolution level (tissue),
writes the plan (``tiling/<slide_id>/<run_id>/plan.json``) and the thumbnail the overlay is drawn on;
each conversion shard then reads only the pyramid tiles under its own range of kept tiles.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from numpy.typing import NDArray
from PIL import Image

from pcam_pipeline.core import keys
from pcam_pipeline.core.dropped_files import DroppedFile, SlideSidecarFile, WholeSlideFile, classify_incoming_key
from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.ports import BlobStore, MessageQueue
from pcam_pipeline.core.records import SlideRecord, present
from pcam_pipeline.core.settings import ConversionSettings
from pcam_pipeline.core.statuses import FileStatus
from pcam_pipeline.ingestion.shard_planning import PatchSource, ShardPlanner, decided_from, kept_changing
from pcam_pipeline.state import slide_pk
from pcam_pipeline.state.ingestion_views import WholeSlidesState
from pcam_pipeline.wsi.plans import (
    SIDECAR_MAX_BYTES,
    MissingResolution,
    local_slide_path,
    missing_resolution,
    parse_sidecar,
    plan_dropped_slide,
    plan_whole_slide,
)
from pcam_pipeline.wsi.reader import WholeSlide
from pcam_pipeline.wsi.staging_ingestion import SlideStagingRequests
from pcam_pipeline.wsi.staging_jobs import NeedsStagingJob, StagingWanted
from pcam_pipeline.wsi.tiling import TilePlan, read_patch
from pcam_pipeline.wsi.vendor import StagedSlide

# A slide's plan, its key, the sidecar version it used (None: the slide's own metadata) and the object its
# shards read (key, version).
type PlannedSlide = tuple[TilePlan, str, str | None, tuple[str, str | None]]
type PlanSlide = Callable[[DroppedFile, WholeSlideFile], PlannedSlide]


class WholeSlideIngestion:
    """A dropped whole-slide image becomes a tile plan and conversion shards; a sidecar gives its µm/px."""

    def __init__(self, settings: ConversionSettings, blobs: BlobStore, state: WholeSlidesState, planner: ShardPlanner,
                 image_edge: dict[str, Any], flow_queue: MessageQueue | None = None):  # fmt: skip
        self._settings, self._blobs, self._state = settings, blobs, state
        self._planner, self._image_edge = planner, image_edge
        self.staging = SlideStagingRequests(settings, blobs, state, flow_queue)

    def ingest(self, dropped: DroppedFile, kind: WholeSlideFile, read_slide: PlanSlide | None = None) -> dict[str, Any]:
        """Plan the slide and its shards (``read_slide``: how; the function's own reading by default). A slide too
        large to stage here is handed to a staging job, and comes back through ``continue_staged``."""
        try:
            planned = self._plan_conversion(dropped, kind, read_slide or self._plan)
        except NeedsStagingJob as large:
            return self.staging.ask(dropped, kind.slide_id, large.size)
        # A sidecar recorded while this upload was being read found no cut slide to redo: redo it here.
        sidecar, current = self._state.slide_sidecar(kind.slide_id), self._state.slide(kind.slide_id)
        if sidecar and current and current.x_run == dropped.run_id and current.sidecar_version != sidecar["version"]:
            return self.ingest(self._with_sidecar(current, sidecar["version"]), kind)
        return planned

    def continue_staged(self, dropped: DroppedFile, wanted: StagingWanted, ended: dict[str, Any]) -> dict[str, Any]:
        """A staging job ended: plan the slide on its staged copy (InvalidInput: the job's reason it did not)."""
        staged = self.staging.answer(wanted, ended)
        return self.ingest(dropped, whole_slide_file(dropped.key), partial(self._plan_staged, staged))

    def _plan_conversion(self, dropped: DroppedFile, kind: WholeSlideFile, read_slide: PlanSlide) -> dict[str, Any]:
        owner = slide_pk(kind.slide_id)
        decided = None
        for current in decided_from(lambda: self._state.slide(kind.slide_id) or SlideRecord()):
            if current.x_run == dropped.run_id:
                return self._planner.finish(dropped, owner, current)
            if decided is None:
                decided = self._plan_or_wait_for_sidecar(dropped, kind, read_slide)
            plan, plan_key, sidecar_version, (source_key, source_version) = decided
            prefix = keys.slide_image_prefix(kind.slide_id, dropped.run_id)
            read_at = f"whole-slide image, level {plan.slide_level} ({plan.level_mpp:.3f} µm/px)"
            if plan.vendor:
                read_at += f", staged by OpenSlide ({plan.vendor})"
            source = PatchSource(source_key, source_version, plan.tiles_kept, read_at, prefix, plan_key)
            fields = {"kind": "slide", "slide_id": kind.slide_id, "has_coords": True, "tile_plan_key": plan_key,
                      "sidecar_version": sidecar_version, **self._image_edge}  # fmt: skip
            planned = self._planner.plan(dropped, owner, source, fields, current, forget=("coords_key",))
            if planned:
                return {**planned, "tiles_total": plan.tiles_total, "mpp": plan.mpp, "mpp_source": plan.mpp_source}
        raise kept_changing()

    def _plan_or_wait_for_sidecar(
        self, dropped: DroppedFile, kind: WholeSlideFile, read_slide: PlanSlide
    ) -> PlannedSlide:
        slide_id = kind.slide_id
        try:
            return read_slide(dropped, kind)
        except MissingResolution:  # quarantined; its sidecar will have this upload read again
            awaiting = (slide_id, dropped.key, dropped.version_id, keys.quarantine_key(dropped.key))
            self._state.record_slide_awaiting_mpp(*awaiting)
            if self._state.slide_sidecar(slide_id) is None:
                raise
            # The sidecar was recorded meanwhile, and may not have seen this upload waiting for it: read again
            # at its µm/px (a staging job's copy was made without it: another job).
            self._state.forget_slide_awaiting_mpp(slide_id)
            return self._plan(dropped, kind)

    def _with_sidecar(self, current: SlideRecord, sidecar_version: str) -> DroppedFile:
        """The slide's current upload, to be cut again at a sidecar's µm/px (its own run: outputs never mix)."""
        upload = present(current.x_key, f"upload of slide {current.slide_id}")
        return DroppedFile(self._settings.bucket, upload, current.x_version_id, etag=current.x_version or "",
                           run_context=f"sidecar {sidecar_version}")  # fmt: skip

    def record_sidecar(self, dropped: DroppedFile, kind: SlideSidecarFile) -> dict[str, Any]:
        """Record a slide's µm/px; a slide quarantined for want of it is read again, one already cut is cut again."""
        with self._blobs.open(dropped.key, dropped.version_id) as f:
            mpp = parse_sidecar(f.read(SIDECAR_MAX_BYTES + 1))
        self._state.record_slide_sidecar(kind.slide_id, mpp, dropped.key, dropped.version)
        self._state.record_file(dropped.key, dropped.version, FileStatus.SIDECAR_RECORDED)
        result = {"status": "sidecar recorded", "slide_id": kind.slide_id, "mpp": mpp}
        awaiting = self._state.slide_awaiting_mpp(kind.slide_id)
        if awaiting:  # the quarantined upload is read again from its version in the bucket's history
            waited = DroppedFile(self._settings.bucket, awaiting["key"], awaiting["version_id"],
                                 run_context=f"sidecar {dropped.version}")  # fmt: skip
            try:
                self._check_still_kept(waited)
                cut = self.ingest(waited, whole_slide_file(waited.key))
            except InvalidInput as problem:  # the slide stays in quarantine, now for this reason
                self._state.record_file(waited.key, waited.version, FileStatus.QUARANTINED, reason=problem.describe())
                cut = {"status": "still quarantined", "reason": problem.describe()}
            self._state.forget_slide_awaiting_mpp(kind.slide_id)
            return {**result, "taken_out_of_quarantine": awaiting["key"], "cut": cut}
        current = self._state.slide(kind.slide_id)
        # Cut again at this µm/px, or finish a cut at it that an earlier attempt planned but did not send.
        unsent = current is not None and current.shards_sent != current.x_run
        if current and current.tile_plan_key and (current.sidecar_version != dropped.version or unsent):
            again = self._with_sidecar(current, dropped.version)
            self._check_still_kept(again)  # else the sidecar is quarantined with the reason; it stays recorded
            return {**result, "cut_again": self.ingest(again, whole_slide_file(again.key))}
        return result

    def _check_still_kept(self, waited: DroppedFile) -> None:
        if not self._blobs.exists(waited.key, waited.version_id):
            raise InvalidInput(
                "the quarantined slide is no longer in the bucket's history (a replaced or quarantined upload is "
                "kept for KeepReplacedDropsDays days, 365 by default)",
                f"the slide dropped again at {waited.key}; its sidecar is already recorded",
                f"version {waited.version_id} of {waited.key}",
            )

    def _plan(self, dropped: DroppedFile, kind: WholeSlideFile) -> PlannedSlide:
        """Read the slide's structure and tissue; write its plan and thumbnail. Returns the plan, its key, the
        version of the sidecar it used (None: the slide's own metadata) and the object shards read (key, version):
        the upload, or the copy staged in ``staging/`` of a slide only OpenSlide reads."""
        sidecar = self._state.slide_sidecar(kind.slide_id)
        with (
            tempfile.TemporaryDirectory(prefix="pcam-slide-") as work,
            self._blobs.open(dropped.key, dropped.version_id) as f,
        ):
            local = local_slide_path(Path(work), dropped.key)
            download = partial(self._blobs.download, dropped.key, dropped.version_id)
            plan, thumbnail, staged = plan_dropped_slide(f, f.size, kind, sidecar, self._settings, (local, download))
            source = (dropped.key, dropped.version_id)
            if staged is not None:
                staged_key = keys.staged_slide_key(kind.slide_id, dropped.run_id)
                source = (staged_key, self._blobs.upload(staged_key, Path(staged.path), "image/tiff"))
        return self._write_plan(dropped, kind, plan, thumbnail, sidecar, source)

    def _plan_staged(self, staged: StagedSlide, dropped: DroppedFile, kind: WholeSlideFile) -> PlannedSlide:
        """As ``_plan``, on the copy a staging job wrote (``staged.path`` is its key)."""
        sidecar = self._state.slide_sidecar(kind.slide_id)
        if staged.mpp is None:
            raise missing_resolution(kind.slide_id, staged.mpp_source)
        with self._blobs.open(staged.path) as f:
            plan, thumbnail = plan_whole_slide(f, staged.staged_bytes, kind.slide_id, sidecar, self._settings, staged)
        source = (staged.path, self._blobs.latest_version(staged.path))
        return self._write_plan(dropped, kind, plan, thumbnail, sidecar, source)

    def _write_plan(self, dropped: DroppedFile, kind: WholeSlideFile, plan: TilePlan, thumbnail: Image.Image,
                    sidecar: dict[str, Any] | None, source: tuple[str, str | None]) -> PlannedSlide:  # fmt: skip
        plan_key = keys.tiling_key(kind.slide_id, dropped.run_id, "plan.json")
        picture = io.BytesIO()
        thumbnail.save(picture, format="JPEG", quality=85)
        self._blobs.put_bytes(keys.tiling_key(kind.slide_id, dropped.run_id, "thumbnail.jpg"), picture.getvalue(),
                              "image/jpeg")  # fmt: skip
        self._blobs.put_json(plan_key, plan.to_json())
        return plan, plan_key, sidecar["version"] if sidecar else None, source


def load_plan(blobs: BlobStore, plan_key: str) -> TilePlan:
    return TilePlan.from_json(json.loads(blobs.get_bytes(plan_key)))


def thumbnail_key(plan_key: str) -> str:
    return plan_key.rsplit("/", 1)[0] + "/thumbnail.jpg"


def cut_patches(slide: WholeSlide, plan: TilePlan, start: int, stop: int) -> Iterator[tuple[int, NDArray[Any]]]:
    """The patches of kept tiles [start, stop), in order: rows of tiles share pyramid tiles in the cache."""
    for index in range(start, stop):
        x, y = plan.coords[index]
        yield index, read_patch(slide, plan, x, y)


def whole_slide_file(key: str) -> WholeSlideFile:
    """What a slide's recorded upload is: a whole-slide image, or it would not be waiting for a sidecar."""
    kind = classify_incoming_key(key)
    if not isinstance(kind, WholeSlideFile):
        raise InvalidInput(f"{key} is not a whole-slide image", "a slide image for the sidecar's µm per pixel")
    return kind

"""One conversion shard: a slice of a dropped patch file becomes JPEG objects."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pcam_pipeline.aws.blob_store import S3BlobStore
from pcam_pipeline.aws.events import EventPublisher
from pcam_pipeline.aws.observability import logger, metrics
from pcam_pipeline.core import keys, ports
from pcam_pipeline.core.dropped_files import DroppedFile
from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.keys import patch_file_name
from pcam_pipeline.core.records import present
from pcam_pipeline.core.settings import ConversionSettings
from pcam_pipeline.core.statuses import FileStatus
from pcam_pipeline.ingestion.completion import Completer
from pcam_pipeline.ingestion.hdf5_input import open_hdf5
from pcam_pipeline.ingestion.patches import encode_jpeg
from pcam_pipeline.ingestion.quarantine import settle_quarantine
from pcam_pipeline.ingestion.shard_planning import ShardTask
from pcam_pipeline.state import StateStore, slide_id_of
from pcam_pipeline.state.ingestion_views import ConversionState
from pcam_pipeline.wsi import stain
from pcam_pipeline.wsi.ingestion import cut_patches, load_plan
from pcam_pipeline.wsi.reader import WholeSlide
from pcam_pipeline.wsi.tile_qc import measure_tile

# Patches read from HDF5 at once: 512 x 27 KB = 14 MB, whatever the shard or file size.
READ_BATCH = 512


class ShardConverter:
    def __init__(
        self,
        settings: ConversionSettings,
        blobs: ports.BlobStore | None = None,
        state: StateStore | None = None,
        publisher: ports.EventPublisher | None = None,
    ):
        self._settings = settings
        self._blobs = blobs or S3BlobStore(settings.bucket)
        store = state or StateStore(settings.state_table)
        self._state: ConversionState = store
        self._events = publisher or EventPublisher(settings.event_bus, with_v1=settings.publish_v1_events)
        self._completer = Completer(self._blobs, store, self._events)

    def convert(self, task: ShardTask) -> dict[str, Any]:
        logger.append_keys(file_key=task.file_key, run_id=task.run_id, shard=task.shard)
        try:
            written = self.write_patches(task)
        except InvalidInput as problem:  # deterministic: retrying would fail the same way
            return self._set_aside(task, problem)
        progress = self._state.record_shard_done(task.owner, task.run_id, task.shard)
        metrics.add_metric(name="PatchesConverted", unit="Count", value=written)
        if progress is None:
            logger.info("shard belongs to a superseded upload; not counted")
            return {"status": "superseded", "patches": written}
        announced = self._completer.complete_if_ready(task.owner, task.claimer)
        return {
            "status": "converted",
            "patches": written,
            "announced": announced,
            "shards_done": len(progress.get("shards_done", [])),
            "shards_total": progress.get("shards_total"),
        }

    def write_patches(self, task: ShardTask) -> int:
        """Encode and upload the shard's patches as they are read (stain-normalised as planned); each patch's
        stain is sampled, and a slide's tiles are measured for QC."""
        quality, resize_to = self._settings.jpeg_quality, self._settings.resize_to
        source = self._whole_slide_patches if task.tile_plan_key else self._hdf5_patches
        slide_id = slide_id_of(task.owner)
        measures, stain_samples = [], []
        with self._blobs.uploader() as uploader, source(task) as patches:
            for index, patch in patches:
                stain_samples.append(stain.patch_sample(patch))  # as dropped: the stain the lab's slides have
                if slide_id is not None:
                    measures.append(measure_tile(patch))
                key = task.image_prefix + patch_file_name(index, task.image_prefix)
                normalised = stain.as_normalised(patch, task.stain_normalisation)
                uploader.put(key, encode_jpeg(normalised, quality, resize_to), "image/jpeg")
        self._blobs.put_array(keys.stain_sample_key(task.image_prefix, task.shard), stain.shard_sample(stain_samples))
        if slide_id is not None:
            self._blobs.put_array(keys.tile_qc_key(slide_id, task.run_id, task.shard), np.array(measures))
        return task.stop - task.start

    @contextlib.contextmanager
    def _whole_slide_patches(self, task: ShardTask) -> Iterator[Iterator[tuple[int, NDArray[Any]]]]:
        """The shard's tiles cut from the slide: only the pyramid tiles under them are read."""
        plan = load_plan(self._blobs, present(task.tile_plan_key, f"tile plan of {task.owner}"))
        with (
            self._blobs.open(task.source_key, task.source_version) as f,
            WholeSlide(f, f.size, self._settings.slide_limits, (plan.width, plan.height)) as slide,
        ):
            yield cut_patches(slide, plan, task.start, task.stop)

    @contextlib.contextmanager
    def _hdf5_patches(self, task: ShardTask) -> Iterator[Iterator[tuple[int, NDArray[Any]]]]:
        """The shard's patches, each block read while the one before is encoded (read-ahead)."""
        starts = range(task.start, task.stop, READ_BATCH)
        with (
            self._blobs.open(task.source_key, task.source_version) as f,
            open_hdf5(f, f.size) as handle,
            ThreadPoolExecutor(max_workers=1) as reader,
        ):
            patches = handle["x"]

            def read(first: int) -> NDArray[Any]:
                stop = min(first + READ_BATCH, task.stop)
                try:
                    block: NDArray[Any] = patches[first:stop]
                    return block
                except (OSError, RuntimeError, ValueError) as exc:  # a checksum or decode error of the file
                    raise InvalidInput(
                        f"patches {first} to {stop - 1} cannot be read (the file is damaged)",
                        "a file whose every patch can be read",
                        str(exc),
                    ) from exc

            def blocks() -> Iterator[tuple[int, NDArray[Any]]]:
                pending = reader.submit(read, starts[0])
                for position, first in enumerate(starts):
                    block = pending.result()
                    if position + 1 < len(starts):
                        pending = reader.submit(read, starts[position + 1])
                    yield from enumerate(block, start=first)

            yield blocks()

    def _set_aside(self, task: ShardTask, problem: InvalidInput) -> dict[str, Any]:
        """Quarantine the upload at its first damaged patches: no retry, no manifest, and its owner says why."""
        logger.warning("the file is damaged", extra={"reason": problem.describe()})
        if self._state.mark_damaged(task.owner, task.run_id, task.shard, problem.describe()):
            dropped = DroppedFile(self._blobs.bucket, task.file_key, task.file_version_id, etag=task.file_version)
            settle_quarantine(self._blobs, self._state, self._events, dropped, problem)
        return {"status": "damaged", "reason": problem.describe()}

    def record_failure(self, task: ShardTask, reason: str) -> None:
        """The shard's last attempt failed: its split or slide and its file say so."""
        self._state.record_shard_failed(task.owner, task.run_id, task.shard, reason)
        self._state.record_file(
            task.file_key,
            task.file_version,
            FileStatus.FAILED,
            reason=f"conversion shard {task.shard} failed: {reason} (message moved to the convert dead-letter queue)",
        )

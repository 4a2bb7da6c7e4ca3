"""Ingestion's side of a slide staging job (``wsi.staging_jobs``): ask the SageMaker flow for one, and read what it
staged (or why it did not) when the flow says it ended."""

from __future__ import annotations

import json
from typing import Any

from pcam_pipeline.core.dropped_files import DroppedFile
from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.ports import BlobStore, MessageQueue
from pcam_pipeline.core.settings import ConversionSettings
from pcam_pipeline.core.statuses import FileStatus
from pcam_pipeline.state.ingestion_views import WholeSlidesState
from pcam_pipeline.wsi.staging_jobs import (
    REFUSED_FILE,
    STAGED_FILE,
    STAGED_SLIDE,
    WANTED_FILE,
    StagingWanted,
    staging_wanted_message,
)
from pcam_pipeline.wsi.vendor import StagedSlide


class SlideStagingRequests:
    def __init__(self, settings: ConversionSettings, blobs: BlobStore, state: WholeSlidesState,
                 flow_queue: MessageQueue | None):  # fmt: skip
        self._settings, self._blobs, self._state, self._queue = settings, blobs, state, flow_queue

    def ask(self, dropped: DroppedFile, slide_id: str, size: int) -> dict[str, Any]:
        """Copy the exact upload beside what to stage, and ask the flow for a job (again: the same job)."""
        limits = self._settings.slide_limits
        if self._queue is None:  # a deployment without the flow's queue (tests of ingestion alone)
            raise InvalidInput("the slide is too large to stage in the ingest function",
                               f"at most {limits.lambda_vendor_bytes / 2**30:g} GiB (VendorSlideLambdaMaxGB)",
                               f"{size:,} bytes")  # fmt: skip
        sidecar = self._state.slide_sidecar(slide_id)
        mpp = sidecar["mpp"] if sidecar else None
        wanted = StagingWanted.of(dropped, slide_id, size, mpp, self._settings.tiling.model_mpp, limits)
        if not self._blobs.exists(wanted.prefix + WANTED_FILE):  # written last: the copy is whole
            self._blobs.copy(dropped.key, dropped.version_id, wanted.source_key)
            self._blobs.put_json(wanted.prefix + WANTED_FILE, wanted.to_json())
        # Recorded before asking: the job's end can only come after the ask, and a failed ask is retried.
        self._state.record_file(dropped.key, dropped.version, FileStatus.STAGING_BY_JOB, staging_job=wanted.job_name)
        self._queue.send([staging_wanted_message(wanted)])
        return {"status": str(FileStatus.STAGING_BY_JOB), "job": wanted.job_name, "bytes": size}

    def wanted(self, prefix: str) -> StagingWanted:
        return StagingWanted.from_json(json.loads(self._blobs.get_bytes(prefix + WANTED_FILE)))

    def answer(self, wanted: StagingWanted, ended: dict[str, Any]) -> StagedSlide:
        """What the job staged; InvalidInput with the job's own reason when it refused the slide or failed."""
        if ended["status"] != "Completed":
            why = f"job {ended['job']} {ended['status'].lower()}: {ended['reason'] or 'no reason given'}"
            raise InvalidInput(
                "the staging job did not stage the slide", "a slide the staging job reads to the end", why
            )
        out = wanted.output_prefix
        if self._blobs.exists(out + REFUSED_FILE):
            raise InvalidInput(*json.loads(self._blobs.get_bytes(out + REFUSED_FILE))["refused"])
        answer = json.loads(self._blobs.get_bytes(out + STAGED_FILE))
        return StagedSlide(**{**answer, "path": out + STAGED_SLIDE, "base_size": tuple(answer["base_size"]),
                              "origin": tuple(answer.get("origin", (0, 0)))})  # fmt: skip

"""Slides too large to stage in the ingest function are staged by a SageMaker Processing job. Pure.

A slide only OpenSlide reads, larger than ``VendorSlideLambdaMaxGB``, does not fit the function's 10 GB of disk
and 15 minutes. Ingestion copies the exact upload under the slide's staging folder, writes what to stage there
(``wanted.json``) and asks the SageMaker flow for a job ("Slide Staging Wanted" on the flow's queue). The job
(kind ``slide staging``) runs the same child code (``wsi.openslide_staging``) and writes the staged copy and its
answer under ``job/``. The flow sends the job's end back to ingestion ("Slide Staged" on the ingest queue),
which plans the slide on the staged copy, or quarantines it with the job's reason. These messages are the
pipeline's own, between its queues: they are not published on its bus.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Any

from pcam_pipeline.core import keys
from pcam_pipeline.core.dropped_files import DroppedFile
from pcam_pipeline.wsi.structure import SlideLimits

STAGING_SOURCE = "pcam.pipeline.staging"
STAGING_WANTED = "Slide Staging Wanted"
SLIDE_STAGED = "Slide Staged"
WANTED_FILE, STAGED_FILE, REFUSED_FILE, STAGED_SLIDE = "wanted.json", "staged.json", "refused.json", "staged.tif"
# SageMaker Processing's ClusterConfig.VolumeSizeInGB: 1 to 16,384 (API Reference, ProcessingClusterConfig).
MIN_VOLUME_GB, MAX_VOLUME_GB = 30, 16_384


class NeedsStagingJob(Exception):
    """The slide is too large to stage in the function; a staging job does it."""

    def __init__(self, size: int):
        super().__init__(f"{size:,} bytes: staged by a SageMaker Processing job")
        self.size = size


def needs_staging_job(size: int, limits: SlideLimits) -> bool:
    return size > limits.lambda_vendor_bytes


def staging_volume_gb(size: int) -> int:
    """The job's storage for a slide of ``size`` bytes: the slide, what a .zip unpacks to (as much again), the
    staged copy (deflate, at the model's resolution: measured at most the slide's size) and 10 GB of room."""
    return min(MAX_VOLUME_GB, max(MIN_VOLUME_GB, math.ceil(3 * size / 2**30) + 10))


@dataclass(frozen=True)
class StagingWanted:
    """What a staging job stages: one upload of a slide, copied to ``source_key``, and the limits it is read to."""

    slide_id: str
    key: str
    version_id: str | None
    etag: str
    run_context: str
    sequencer: str
    size: int
    mpp: float | None  # a sidecar's µm/px; None: the slide's own
    model_mpp: float
    max_gigapixels: float
    max_vendor_bytes: int
    max_archive_files: int

    @classmethod
    def of(cls, dropped: DroppedFile, slide_id: str, size: int, mpp: float | None, model_mpp: float,
           limits: SlideLimits) -> StagingWanted:  # fmt: skip
        upload = (dropped.key, dropped.version_id, dropped.etag, dropped.run_context, dropped.sequencer)
        return cls(slide_id, *upload, size, mpp, model_mpp, limits.max_gigapixels, limits.max_vendor_bytes,
                   limits.max_archive_files)  # fmt: skip

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> StagingWanted:
        return cls(**document)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def dropped(self) -> DroppedFile:
        return DroppedFile("", self.key, self.version_id, self.etag, run_context=self.run_context,
                           sequencer=self.sequencer)  # fmt: skip

    @property
    def prefix(self) -> str:
        """One folder per upload and µm/px (a sidecar arriving later asks for another job)."""
        resolution = "own-mpp" if self.mpp is None else f"mpp-{self.mpp:g}"
        return f"{keys.staging_job_prefix(self.slide_id, self.dropped.run_id)}{resolution}/"

    @property
    def source_key(self) -> str:
        """The upload's copy the job reads: named ``slide`` and the drop's extension (OpenSlide tells formats by it)."""
        return f"{self.prefix}source/slide{PurePosixPath(self.key).suffix.lower()}"

    @property
    def output_prefix(self) -> str:
        return f"{self.prefix}job/"

    @property
    def job_name(self) -> str:
        return f"pcam-stage-{keys.short_id(self.prefix)}"

    @property
    def volume_gb(self) -> int:
        return staging_volume_gb(self.size)


def queue_message(detail_type: str, detail: dict[str, Any], message_id: str) -> str:
    """A message between the pipeline's queues, shaped as an EventBridge event (its handlers parse those)."""
    return json.dumps({"id": message_id, "source": STAGING_SOURCE, "detail-type": detail_type, "detail": detail})


def staging_wanted_message(wanted: StagingWanted) -> str:
    return queue_message(STAGING_WANTED, {"prefix": wanted.prefix, "slide_id": wanted.slide_id},
                         f"staging wanted {wanted.prefix}")  # fmt: skip


def slide_staged_message(prefix: str, job: str, status: str, reason: str = "") -> str:
    """The job's end, for ingestion: ``Completed`` (its answer is under ``job/``), or why it did not."""
    return queue_message(SLIDE_STAGED, {"prefix": prefix, "job": job, "status": status, "reason": reason},
                         f"slide staged {job} {status}")  # fmt: skip

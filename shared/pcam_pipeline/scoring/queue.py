"""The scoring queue: ready slides wait here for a transform job, and ``dispatch`` starts jobs for them.

- At most ``MaxConcurrentTransformJobs`` slide-scoring jobs run at once, each in a slot (state/scoring.py).
- Slides that become ready close together share one job (``scoring_batches``), whose ManifestFile lists
  every slide's patches; gathering splits the outputs back per slide (``slide_scoring``).
- SageMaker refusing a start for capacity (ResourceLimitExceeded, throttling) gives the slot back and
  leaves the slides queued; the next job end, slide, promotion or the scheduled tick tries again.
- One dispatcher at a time forms batches (a lease that expires if its holder dies), so two concurrent
  triggers never put one slide into two jobs.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pcam_pipeline.aws.observability import logger, metrics
from pcam_pipeline.core import keys
from pcam_pipeline.core.errors import CapacityRefused
from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.core.model_records import JobRecord
from pcam_pipeline.core.ports import BlobStore
from pcam_pipeline.core.records import ScoringQueueEntry, present
from pcam_pipeline.core.settings import ModelSettings
from pcam_pipeline.core.statuses import JobStatus, OwnerStatus
from pcam_pipeline.ingestion import manifests
from pcam_pipeline.models import inference_requests, sagemaker_jobs
from pcam_pipeline.models.job_tracker import JobTracker
from pcam_pipeline.models.promotion import PromotedModels
from pcam_pipeline.models.sagemaker_jobs import SageMakerSettings
from pcam_pipeline.scoring.batches import BatchPolicy, next_batch
from pcam_pipeline.state.views import ScoringQueueState

# A slot taken for a start that has not happened after this long was abandoned (a start takes seconds).
ABANDONED_START = timedelta(minutes=10)
# Longer than a dispatch takes (a few state writes and CreateTransformJob calls per job started).
DISPATCH_LEASE_SECONDS = 120


class ScoringQueue:
    def __init__(
        self,
        settings: ModelSettings,
        state: ScoringQueueState,
        blobs: BlobStore,
        jobs: JobTracker,
        registry: PromotedModels,
    ):
        self._state, self._blobs, self._jobs, self._registry = state, blobs, jobs, registry
        self._sagemaker, self._slots = settings.sagemaker, settings.max_transform_jobs
        self._policy = BatchPolicy(settings.scoring_batch_window_seconds, settings.scoring_batch_max_patches)

    def add(self, slide_id: str, run_id: str, patch_count: int) -> bool:
        return self._state.queue_slide(slide_id, run_id, patch_count)

    def retry_alone(self, job: JobRecord) -> list[str]:
        """A job of several slides failed: each of its unscored slides is queued again, to be scored alone."""
        return [
            member["slide_id"]
            for member in job.slides or []
            if self._state.requeue_slide_alone(queued_entry(member, present(job.model_name, f"model of {job.name}")))
        ]

    def job_ended(self, job: JobRecord) -> dict[str, Any]:
        """A slide-scoring job ended, however it ended: its slot is free for the next batch."""
        self._state.free_transform_slot(job.name)
        return self.dispatch()

    def dispatch(self) -> dict[str, Any]:
        """Start jobs for queued slides, oldest first, while a batch is due, a slot is free and SageMaker has room."""
        queued = self._state.queued_slides()
        if not queued:
            return {"status": "nothing queued"}
        current = self._registry.current()
        if current is None and not any(entry.model for entry in queued):
            return {"status": "waiting for a model"}
        holder = uuid.uuid4().hex
        if not self._state.take_dispatch_lease(holder, DISPATCH_LEASE_SECONDS):
            return {"status": "another dispatch is running"}
        try:
            return self._dispatch(current.model_name if current else "")
        finally:
            self._state.release_dispatch_lease(holder)

    def _dispatch(self, model_name: str) -> dict[str, Any]:
        """``model_name``: the current model, for entries that name none ("" while none is current: only
        entries naming their model, such as an operator's rescore with --model, can start)."""
        self._free_slots_of_ended_jobs()
        queued = [
            replace(entry, model=entry.model or model_name)
            for entry in self._state.queued_slides()
            if (entry.model or model_name) and self._still_wanted(entry)
        ]
        started, outcome = [], "every queued slide has a job"
        while queued:
            batch = next_batch(queued, self._policy, datetime.now(UTC))
            if not batch:
                outcome = f"the next batch fills until its oldest slide has waited {self._policy.window_seconds} s"
                break
            outcome = self._start(batch)
            if outcome:
                break
            started.append([entry.slide_id for entry in batch])
            queued = [entry for entry in queued if entry not in batch]
        return {"status": "dispatched", "started": started, "still_queued": len(queued), "outcome": outcome}

    def _still_wanted(self, entry: ScoringQueueEntry) -> bool:
        """Drop the entry of an upload the slide has moved on from (its new upload has an entry of its own), and
        one already in a job that started (a dispatch failed after the start): it finishes moving there."""
        started = self._state.job(entry.job) if entry.job else None
        if started is not None and started.status is not JobStatus.STARTING:
            self._state.mark_slide_scoring(entry.slide_id, entry.run_id, started.name, started.model_name or "")
            self._state.unqueue_slide(entry)
            return False
        slide = self._state.slide(entry.slide_id)
        if slide and slide.x_run == entry.run_id and slide.status is OwnerStatus.READY:
            return True
        self._state.unqueue_slide(entry)
        return False

    def _start(self, batch: list[ScoringQueueEntry]) -> str:
        """Start the batch's job; the reason it cannot start yet, or "" once it runs."""
        logger.append_keys(slide_id=batch[0].slide_id, run_id=batch[0].run_id, job=None)
        model_name = batch[0].model
        job = scoring_job(self._blobs, batch, model_name)
        recorded = self._state.job(job.name)
        if recorded is None or recorded.status is JobStatus.STARTING:
            # The slot first: a batch that waits for one leaves no job record behind (the next try may
            # batch differently); a slot whose job was never recorded is freed by the next dispatch.
            if not self._state.take_transform_slot(job.name, self._slots):
                return f"all {self._slots} transform slots are in use"
            self._jobs.record(job)
            members = [(member["image_prefix"], member["patch_count"]) for member in job.slides or []]
            manifest_key = keys.scoring_manifest_key(job.name)
            self._blobs.put_bytes(
                manifest_key, manifests.scoring_manifest(self._blobs.bucket, members).encode(), "application/json"
            )
            for entry in batch:
                self._state.assign_queued_slide(entry, job.name)
            try:
                output = self._blobs.uri(present(job.output_prefix, f"output of {job.name}"))
                self._jobs.start_once(job, scoring_request(self._sagemaker, job, output))
            except CapacityRefused as exc:
                self._state.free_transform_slot(job.name)
                self._state.forget_unstarted_job(job.name)  # the next try may batch differently
                metrics.add_metric(name="SlideScoringDeferred", unit="Count", value=len(batch))
                logger.info("SageMaker has no capacity; the slides stay queued", extra={"reason": str(exc)})
                return f"SageMaker has no capacity now, the queue waits: {exc}"
        for entry in batch:
            self._state.mark_slide_scoring(entry.slide_id, entry.run_id, job.name, model_name)
            self._state.unqueue_slide(entry)
        return ""

    def _free_slots_of_ended_jobs(self) -> None:
        """Free the slots of jobs that ended, and of starts that never happened (a crash in between, after
        which the slides moved on): a missed event or a crash never keeps a slot taken for good."""
        for item in self._state.transform_slots().values():
            name = item.get("job")
            if not name:
                continue
            job = self._state.job(name)
            abandoned = job is not None and job.status is JobStatus.STARTING and _older_than(item["taken_at"])
            if job is None or job.status.terminal or abandoned:
                self._state.free_transform_slot(name)


def scoring_job(blobs: BlobStore, batch: list[ScoringQueueEntry], model_name: str) -> JobRecord:
    """The job record of one batch: its member slides, where their outputs go, and its name (from its inputs)."""
    members = [
        {
            "slide_id": entry.slide_id,
            "run_id": entry.run_id,
            "patch_count": entry.patch_count,
            "image_prefix": keys.slide_image_prefix(entry.slide_id, entry.run_id),
            "request": entry.request,
        }
        for entry in batch
    ]
    identity = "|".join([model_name, *(entry.sk for entry in batch)])
    name = sagemaker_jobs.job_name(batch[0].slide_id, identity, kind="score")
    alone = len(batch) == 1
    return JobRecord(
        name=name,
        kind=JobKind.SLIDE_SCORING,
        slide_id=batch[0].slide_id if alone else None,
        run_id=batch[0].run_id if alone else None,
        model_name=model_name,
        manifest=blobs.uri(keys.scoring_manifest_key(name)),
        output_prefix=f"{keys.SCORES}{name}/",
        patch_count=sum(entry.patch_count for entry in batch),
        slides=members,
    )


def scoring_request(settings: SageMakerSettings, job: JobRecord, output_uri: str) -> dict[str, Any]:
    """CreateTransformJob for a scoring job: its ManifestFile lists every member slide's patches."""
    model_name = present(job.model_name, f"model of {job.name}")
    tags = {"pcam:slide": job.slide_id or f"{len(job.slides or [])} slides", "pcam:model": model_name}
    manifest = present(job.manifest, f"manifest of {job.name}")
    return inference_requests.transform_request(
        settings, job.name, model_name, manifest, output_uri, tags, input_is_manifest=True
    )


def queued_entry(member: dict[str, Any], model_name: str) -> ScoringQueueEntry:
    """A job's member as the queue entry it came from."""
    return ScoringQueueEntry(
        slide_id=member["slide_id"],
        run_id=member["run_id"],
        patch_count=member["patch_count"],
        request=member.get("request", ""),
        model=model_name,
    )


def _older_than(taken_at: str, age: timedelta = ABANDONED_START) -> bool:
    return datetime.now(UTC) - datetime.fromisoformat(taken_at) > age

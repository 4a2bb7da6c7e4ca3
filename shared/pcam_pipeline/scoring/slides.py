"""Scoring slides: Batch Transform of ready slides with the current model, then predictions/<slide_id>.*

A ready slide joins the scoring queue (``scoring/queue.py``), which starts transform jobs as slots and
SageMaker's capacity allow, several slides per job when they are ready close together. When a job
completes, its outputs are split back per slide: each slide gets its CSV, summary, heatmap and one
"Slide Scored" (``scoring/result_writing.py``). A job of several slides that fails has each of its slides
retried alone, so one bad slide cannot block the others; a slide that fails alone is recorded and alerted.

A slide that is ready before any model is current waits (a record under ``waiting-slides``) and is
queued when a model is promoted. A slide dropped again is scored again; a result is only written for
the slide's current upload, so a late job for an older upload never overwrites a newer result.
"""

from __future__ import annotations

from typing import Any

from pcam_pipeline.aws import events
from pcam_pipeline.aws.observability import logger
from pcam_pipeline.core import keys
from pcam_pipeline.core.errors import JobFailed
from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.core.model_records import JobRecord
from pcam_pipeline.core.ports import EventPublisher
from pcam_pipeline.core.records import SlideRecord, present
from pcam_pipeline.core.settings import ModelSettings
from pcam_pipeline.core.statuses import OwnerStatus
from pcam_pipeline.models.job_tracker import JobKindBase
from pcam_pipeline.models.promotion import PromotedModels
from pcam_pipeline.scoring.queue import ScoringQueue
from pcam_pipeline.scoring.result_writing import SlideResultWriter
from pcam_pipeline.state.views import SlideScoringState


class SlideScoring(JobKindBase):
    kinds: tuple[JobKind, ...] = (JobKind.SLIDE_SCORING,)
    failure_consequence = "No result is written for the slide."

    def __init__(
        self,
        settings: ModelSettings,
        state: SlideScoringState,
        queue: ScoringQueue,
        results: SlideResultWriter,
        registry: PromotedModels,
        publisher: EventPublisher,
    ):
        super().__init__(publisher)
        self._state, self.queue, self._results, self._registry = state, queue, results, registry
        self._threshold, self._rescore_on_promotion = settings.decision_threshold, settings.rescore_on_promotion

    # ------------------------------------------------------------ starting
    def on_slide_ready(self, detail: dict[str, Any]) -> dict[str, Any]:
        logger.append_keys(slide_id=detail["slide_id"], run_id=detail["run_id"], file_key=detail.get("input_key"))
        slide_id, run_id = detail["slide_id"], detail["run_id"]
        slide = self._state.slide(slide_id)
        if not slide or slide.status is not OwnerStatus.READY or slide.x_run != run_id:
            return {"status": "ignored", "slide_id": slide_id, "reason": "not the slide's current, ready upload"}
        if self._registry.current() is None:
            self._state.mark_slide_waiting_for_model(slide_id, run_id)
            if self._registry.current() is None:  # else a model was promoted meanwhile: queue the slide now
                return {"status": "waiting for a model", "slide_id": slide_id}
        self.queue.add(slide_id, run_id, patch_count_of(slide))
        return {"slide_id": slide_id, **self.queue.dispatch()}

    def on_model_promoted(self, detail: dict[str, Any]) -> dict[str, Any]:
        """The slides that waited for a model join the scoring queue; with RescoreOnPromotion, so does every
        slide scored before (once per promotion: the request names the change)."""
        waiting = self._state.waiting_slides()
        for slide_id in waiting:
            slide = self._state.slide(slide_id)
            if slide and slide.status is OwnerStatus.READY:
                self.queue.add(slide_id, present(slide.x_run, f"upload of slide {slide_id}"), patch_count_of(slide))
            self._state.forget_waiting_slide(slide_id)
        current = self._registry.current()
        rescored = []
        if self._rescore_on_promotion and current and current.model_name == detail.get("model_name"):
            request = f"promotion {current.promoted_at}"
            scored = self._state.scored_slides()
            rescored = [slide.slide_id for slide in scored if self._state.queue_rescore(slide.slide_id, request)]
        return {"waiting_slides": waiting, "rescored": rescored, **self.queue.dispatch()}

    # ------------------------------------------------------------ job kind
    def on_completed(self, job: JobRecord, detail: dict[str, Any], delivery: str) -> dict[str, Any]:
        """Split the job's predictions per slide and write each slide's results; then announce it.

        A slide whose outputs cannot be assembled, or whose results fail in any way but AWS's for-now
        refusals, gets no partial CSV: alone, its job fails (JobFailed: recorded and alerted); in a job of
        several slides, it is retried alone and the others keep their results."""
        job = present(self._state.job(job.name), f"job {job.name}")  # with the times SageMaker reported
        members = members_of(job)
        if len(members) == 1:
            return self._results.write(job, members[0])
        outcomes, unusable = [], []
        for member in members:
            try:
                outcomes.append(self._results.write(job, member))
            except JobFailed as exc:
                unusable.append(member["slide_id"])
                logger.warning("a slide of the batch is retried alone", extra={"reason": str(exc)})
        retried = self.queue.retry_alone(job) if unusable else []
        return {"status": "scored", "slides": outcomes, "retried_alone": retried}

    def on_failed(self, job: JobRecord, reason: str) -> bool:
        """True (handled, no alert) when the job scored several slides: each is retried alone."""
        members = members_of(job)
        if len(members) > 1:
            retried = self.queue.retry_alone(job)
            logger.warning("a batch job failed; its slides are retried alone", extra={"slides": retried})
            return True
        member = members[0]
        self._state.record_slide_scoring_failed(member["slide_id"], member["run_id"], f"transform {job.name}: {reason}")
        self._events.publish(
            events.SLIDE_SCORING_FAILED,
            {"slide_id": member["slide_id"], "run_id": member["run_id"], "transform_job": job.name, "reason": reason,
             "consequence": self.failure_consequence},
        )  # fmt: skip
        return False


def members_of(job: JobRecord) -> list[dict[str, Any]]:
    """The slides a scoring job scored, each with where its outputs are. A job recorded before jobs held
    several slides scored one, with its outputs directly under the job's output prefix."""
    if not job.slides:  # its patches were named <index>.jpg, as a dataset's are (keys.patch_file_name)
        return [{"slide_id": job.slide_id, "run_id": job.run_id, "patch_count": job.patch_count, "request": "",
                 "image_prefix": "", "outputs": job.output_prefix, "job_outputs": job.output_prefix}]  # fmt: skip
    return [
        {**member, "outputs": job.output_prefix + member["image_prefix"].removeprefix(keys.SLIDE_IMAGES),
         "job_outputs": job.output_prefix}
        for member in job.slides
    ]  # fmt: skip


def patch_count_of(slide: SlideRecord) -> int:
    return present(slide.x_count, f"patch count of slide {slide.slide_id}")

"""The SageMaker side of the pipeline, driven by its own events and SageMaker's state-change events.

dataset train+valid ready → training (or tuning) job → Model → Batch Transform of the test split
→ evaluation job (scikit-learn) → ROC picture → promotion gate (``model_training``,
``model_evaluation``); slide ready (or a model promoted while slides wait) → the scoring queue →
Batch Transform of the slide, as slots and SageMaker's capacity allow → predictions
(``slide_scoring``). A scheduled tick retries the queue when nothing else would (a quota held by jobs
outside the pipeline). ``job_tracker`` keeps the books every job kind shares.

Every step is idempotent: job names are derived from their inputs (SageMaker refuses a second job of
the same name), records are created conditionally, and a repeated event repeats no work.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pcam_pipeline.aws import events
from pcam_pipeline.aws.alerts import Alerter
from pcam_pipeline.aws.blob_store import S3BlobStore
from pcam_pipeline.aws.job_launcher import SageMakerLauncher
from pcam_pipeline.aws.observability import logger, metrics
from pcam_pipeline.aws.queues import SqsQueue
from pcam_pipeline.core import ports
from pcam_pipeline.core.errors import JobFailed
from pcam_pipeline.core.job_kinds import RESOURCE_BY_EVENT, JobKind
from pcam_pipeline.core.records import present
from pcam_pipeline.core.settings import ModelSettings
from pcam_pipeline.core.statuses import JobStatus
from pcam_pipeline.models.evaluation import ModelEvaluation
from pcam_pipeline.models.evaluation_metrics import EvaluationMetrics
from pcam_pipeline.models.job_tracker import (
    TO_ALERT,
    IgnoredEvent,
    JobKindHandler,
    JobTracker,
    StateChange,
    failed,
)
from pcam_pipeline.models.promotion import PromotedModels
from pcam_pipeline.models.slide_staging import SlideStagingJobs
from pcam_pipeline.models.training import ModelTraining
from pcam_pipeline.scoring.queue import ScoringQueue
from pcam_pipeline.scoring.result_writing import SlideResultWriter
from pcam_pipeline.scoring.slides import SlideScoring
from pcam_pipeline.state import StateStore
from pcam_pipeline.state.views import FlowState
from pcam_pipeline.wsi.staging_jobs import STAGING_WANTED


class SageMakerFlow:
    def __init__(
        self,
        settings: ModelSettings,
        state: StateStore | None = None,
        blobs: ports.BlobStore | None = None,
        launcher: ports.JobLauncher | None = None,
        publisher: ports.EventPublisher | None = None,
        alerter: ports.Alerter | None = None,
        ingest_queue: ports.MessageQueue | None = None,
    ):
        state = state or StateStore(settings.state_table)
        blobs = blobs or S3BlobStore(settings.bucket)
        launcher = launcher or SageMakerLauncher()
        publisher = publisher or events.EventPublisher(settings.event_bus, with_v1=settings.publish_v1_events)
        self._state: FlowState = state
        self.jobs = JobTracker(state, launcher, alerter or Alerter(settings.alert_topic_arn))
        self.registry = PromotedModels(state, publisher)
        jobs, registry = self.jobs, self.registry
        self.evaluation = ModelEvaluation(EvaluationMetrics(settings, state, blobs, jobs, registry, publisher))
        self.training = ModelTraining(settings.sagemaker, state, blobs, launcher, jobs, publisher, self.evaluation)
        queue = ScoringQueue(settings, state, blobs, jobs, registry)
        results = SlideResultWriter(settings, state, blobs, registry, publisher)
        self.slides = SlideScoring(settings, state, queue, results, registry, publisher)
        if ingest_queue is None and settings.ingest_queue_url:
            ingest_queue = SqsQueue(settings.ingest_queue_url)
        self.staging = SlideStagingJobs(settings.sagemaker, state, blobs, jobs, ingest_queue, publisher)
        handlers: tuple[JobKindHandler, ...] = (self.training, self.evaluation, self.slides, self.staging)
        self._kinds = {kind: handler for handler in handlers for kind in handler.kinds}
        if unhandled := set(JobKind) - set(self._kinds):
            raise TypeError(f"no handler follows up jobs of kind {', '.join(sorted(unhandled))}")

    def on_event(self, detail_type: str, detail: dict[str, Any], event_id: str = "") -> dict[str, Any]:
        """One event from either bus: a split or slide became ready, a model was promoted, a job changed.

        ``event_id`` (EventBridge's) tells a retry of this event from another delivery of the same news."""
        detail_type = events.event_of(detail_type)  # "Split Ready v2" is "Split Ready"
        if detail_type == events.SPLIT_READY:
            return self.on_split_ready(detail)
        if detail_type == events.SLIDE_READY:
            return self.slides.on_slide_ready(detail)
        if detail_type == events.MODEL_PROMOTED:
            return self.slides.on_model_promoted(detail)
        if detail_type == STAGING_WANTED:  # from ingestion: a slide too large for it
            return self.staging.start(detail["prefix"])
        if detail_type == events.SCHEDULED_TICK:
            return {"capacity_waits": self.start_waiting_jobs(), **self.slides.queue.dispatch()}
        if detail_type in RESOURCE_BY_EVENT:
            return self.on_sagemaker_event(detail_type, detail, event_id)
        return {"status": "ignored", "reason": f"not an event this function handles: {detail_type!r}"}

    def start_waiting_jobs(self) -> dict[str, str]:
        """Start again each job SageMaker refused for capacity; a job still refused keeps waiting."""
        outcomes = {}
        waits = self._state.capacity_waits()
        # An alarm watches this (CapacityWaitAlarmHours): a quota of 0 nobody raised would otherwise wait for ever.
        metrics.add_metric(name="OldestCapacityWaitHours", unit="NoUnit", value=oldest_wait_hours(waits))
        for wait in waits:
            name = wait["sk"]
            if wait["kind"] == "training":
                result = self.training.start_training(wait["dataset"])
                outcome, replacement = result.get("status", ""), result.get("job")
            elif wait["kind"] == str(JobKind.TEST_TRANSFORM):
                result = self.evaluation.start_test_transform(wait["model_name"])
                outcome, replacement = result.get("evaluation", ""), result.get("transform_job")
            elif wait["kind"] == str(JobKind.SLIDE_STAGING):
                result = self.staging.start(wait["prefix"])
                outcome, replacement = result["staging"], result["job"]
            elif wait["kind"] == str(JobKind.VALIDATION_TRANSFORM):
                transform = present(self._state.job(wait["transform_job"]), f"job {wait['transform_job']}")
                result = self.evaluation.start_validation_transform(wait["model_name"], transform)
                outcome, replacement = result.get("evaluation", ""), result.get("transform_job")
            else:
                transform = present(self._state.job(wait["transform_job"]), f"job {wait['transform_job']}")
                validation = self._state.job(wait["validation_job"]) if wait.get("validation_job") else None
                result = self.evaluation.start_evaluation(wait["model_name"], transform, validation)
                outcome, replacement = result.get("evaluation", ""), result.get("evaluation_job")
            if replacement not in (None, name):  # newer inputs since it waited: that job replaces this one
                self._state.forget_unstarted_job(name)
            elif "waiting for SageMaker capacity" not in outcome:
                self._state.forget_capacity_wait(name)
            outcomes[name] = outcome
        return outcomes

    def on_split_ready(self, detail: dict[str, Any]) -> dict[str, Any]:
        logger.append_keys(dataset=detail["dataset"], split=detail["split"], run_id=detail.get("run_id"))
        if detail["split"] == "test":
            return self.evaluation.evaluate_waiting_models(detail["dataset"])
        return self.training.start_training(detail["dataset"])

    def on_sagemaker_event(self, detail_type: str, detail: dict[str, Any], event_id: str = "") -> dict[str, Any]:
        change = self.jobs.observe(detail_type, detail)
        if isinstance(change, IgnoredEvent):
            return {"status": "ignored", "job": change.name, "reason": change.why}
        outcome = self._follow_up(change, detail, event_id)
        if change.status.terminal and change.job.kind is JobKind.SLIDE_SCORING:
            # Also on a repeat: a delivery that died after the follow-up must still free the slot.
            outcome["queue"] = self.slides.queue.job_ended(change.job)
        return outcome

    def _follow_up(self, change: StateChange, detail: dict[str, Any], event_id: str) -> dict[str, Any]:
        job, kind = change.job, self._kinds[change.job.kind]
        kind.on_progress(job, change.status)  # conditional: a repeat writes only what a failed attempt did not
        if change.status.unsuccessful:
            if change.first_report or job.failure_handled in (None, TO_ALERT):
                reason = change.reason or job.reason or f"the job was {change.status.lower()}"
                self.jobs.fail(job, kind, reason, delivery=event_id or f"{job.name} {change.status}")
            return {"status": "recorded", "job": job.name, "job_status": change.status}
        if change.status is not JobStatus.COMPLETED:
            return {"status": "recorded", "job": job.name, "job_status": change.status}
        # A repeated Completed runs the follow-up again: each step is idempotent, and a retried
        # message must finish what a crashed attempt started.
        try:
            delivery = event_id or f"{job.name} {change.status}"
            return {"status": "completed", "job": job.name, **kind.on_completed(job, detail, delivery)}
        except JobFailed as exc:
            self.jobs.fail(failed(job), kind, str(exc), delivery=delivery)
            return {"status": "failed", "job": job.name, "reason": str(exc)}


def oldest_wait_hours(waits: list[dict[str, Any]], now: datetime | None = None) -> float:
    """How long the oldest job waiting for SageMaker capacity has waited, in hours; 0 when none waits."""
    now = now or datetime.now(UTC)
    ages = [(now - datetime.fromisoformat(w["waiting_since"])).total_seconds() for w in waits if w.get("waiting_since")]
    return round(max(ages, default=0.0) / 3600, 3)

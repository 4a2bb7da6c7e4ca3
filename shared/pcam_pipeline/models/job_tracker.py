"""The bookkeeping every kind of SageMaker job shares: start it once, record what SageMaker reports,
ignore late or foreign events, and record and alert a failure. The kinds (``model_training``,
``model_evaluation``, ``slide_scoring``) say what a job's completion or failure means.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

from pcam_pipeline.aws import events
from pcam_pipeline.aws.observability import logger, metrics
from pcam_pipeline.core.job_kinds import RESOURCE_BY_EVENT, JobKind
from pcam_pipeline.core.model_records import JobRecord
from pcam_pipeline.core.ports import Alerter, EventPublisher, JobLauncher
from pcam_pipeline.core.records import present
from pcam_pipeline.core.statuses import JobStatus
from pcam_pipeline.state.leases import given_back_on_failure
from pcam_pipeline.state.views import JobsState


class JobKindHandler(Protocol):
    """What the kinds of job it handles mean to the pipeline."""

    kinds: tuple[JobKind, ...]  # the job kinds whose events it follows up (core/job_kinds.py)
    failure_consequence: str  # told to operators with every failure

    def on_progress(self, job: JobRecord, status: JobStatus) -> None: ...

    def on_completed(self, job: JobRecord, detail: dict[str, Any], delivery: str) -> dict[str, Any]:
        """``delivery`` identifies the event (its EventBridge id): what to announce once per delivery."""

    def on_failed(self, job: JobRecord, reason: str) -> bool | None:
        """Record what the failure means; True when it is handled (retried) and operators need no alert."""


@dataclass(frozen=True)
class StateChange:
    """A SageMaker event, read against the job's record."""

    name: str
    status: JobStatus
    job: JobRecord
    reason: str = ""
    first_report: bool = True  # False for a repeat of the job's final status


@dataclass(frozen=True)
class IgnoredEvent:
    """A SageMaker event that changes nothing: late, foreign, or a status the pipeline does not follow."""

    name: str
    why: str


class JobTracker:
    def __init__(self, state: JobsState, launcher: JobLauncher, alerter: Alerter):
        self._state, self._launcher, self._alerts = state, launcher, alerter

    def record(self, job: JobRecord) -> bool:
        """Record a job about to start; False if it was recorded before (a repeated event)."""
        return self._state.create_job(job)

    def never_started(self, name: str) -> bool:
        """No SageMaker job of this name exists: its record is gone, or still waits to be started."""
        recorded = self._state.job(name)
        return recorded is None or recorded.status is JobStatus.STARTING

    def start_once(self, job: JobRecord, request: dict[str, Any], **fields: Any) -> bool:
        """Start the recorded job unless its record says it was started already."""
        recorded = self._state.job(job.name)
        if recorded is None or recorded.status is not JobStatus.STARTING:
            return False
        self._launcher.start(job.kind, job.name, request)  # an existing job of this name is this job
        self._state.mark_job_started(job.name, **fields)
        metrics.add_metric(name="SageMakerJobsStarted", unit="Count", value=1)
        logger.info("SageMaker job started", extra={"job": job.name, "kind": job.kind})
        return True

    def observe(self, detail_type: str, detail: dict[str, Any]) -> StateChange | IgnoredEvent:
        """Record the job's new status, once; late, repeated and foreign events change nothing."""
        resource = RESOURCE_BY_EVENT[detail_type]
        name, reported = detail[resource.name_field], detail.get(resource.status_field, "")
        try:
            status = JobStatus(reported)
        except ValueError:  # "Deleting", or a status SageMaker adds later: logged, never retried into a DLQ
            logger.warning("a job status the pipeline does not follow", extra={"job": name, "status": reported})
            return IgnoredEvent(name, f"status {reported!r} is not one the pipeline follows")
        job = self._state.job(name)
        if job is None:
            return IgnoredEvent(name, "not started by this pipeline")
        # Correlation: the job, and the dataset or slide (and its upload) and model it belongs to.
        correlation = {"dataset": job.dataset, "slide_id": job.slide_id, "run_id": job.run_id}
        logger.append_keys(job=name, model_name=job.model_name, **{k: v for k, v in correlation.items() if v})
        # SageMaker's own reason, then the container's (what it wrote to /opt/ml/output/message), when it gave one.
        said = dict.fromkeys(filter(None, (detail.get("FailureReason"), detail.get("ExitMessage"))))
        reason = "" if status is JobStatus.COMPLETED else ": ".join(said)
        if job.status.terminal:
            if status is not job.status:
                if job.status.unsuccessful and job.failure_handled in (None, TO_ALERT):
                    # The pipeline failed it (its outputs were unusable) and the attempt that did so failed
                    # part-way: this delivery finishes recording, announcing and alerting that failure.
                    return StateChange(name, job.status, job, job.reason, first_report=False)
                return IgnoredEvent(name, f"late {status} event for a {job.status} job")
            return StateChange(name, status, job, reason, first_report=False)
        if not self._state.record_job_status(name, status, reason):
            return self.observe(detail_type, detail)  # it ended meanwhile (another delivery): decide on that
        return StateChange(name, status, replace(job, status=status, reason=reason), reason)

    def fail(self, job: JobRecord, kind: JobKindHandler, reason: str, delivery: str = "") -> None:
        """Record the job's failure where operators look for it, announce it, and alert them; a retry after a
        failed attempt does only what is left (``job.failure_handled``: the step reached). One ``delivery`` (an
        event id; the same on a retry or redrive of that event) does it: another report of the same failure,
        handled at the same moment, leaves it to the first."""
        if job.failure_handled not in (None, TO_ALERT):
            return
        lease = self._state.claim_failure_handling(job.name, delivery, (ALERTED, RETRIED_QUIETLY))
        if lease is None:
            logger.info("another delivery handles this failure", extra={"job": job.name})
            return
        with given_back_on_failure(lambda: self._state.release_failure_handling(job.name, lease)):
            # Read again under the claim: a copy of this news may have moved the handling on since ``job`` was read.
            self._handle_failure(job, kind, reason, present(self._state.job(job.name), f"job {job.name}"))
        self._state.release_failure_handling(job.name, lease)

    def _handle_failure(self, job: JobRecord, kind: JobKindHandler, reason: str, now: JobRecord) -> None:
        step = now.failure_handled
        if step is None:
            self._state.record_job_failure(job.name, job.status, reason)
            metrics.add_metric(name="SageMakerJobsFailed", unit="Count", value=1)
            step = RETRIED_QUIETLY if kind.on_failed(job, reason) else TO_ALERT
            self._state.mark_failure_handled(job.name, step)
        if step == RETRIED_QUIETLY:
            logger.info("SageMaker job failed; retried without an alert", extra={"job": job.name, "reason": reason})
        elif step == TO_ALERT:
            ended = job.status.lower()
            self._alerts.alert(
                f"{job.kind} job {ended} for {job.subject}",
                f"SageMaker {job.kind} job {job.name} ({job.status}) for {job.subject}.\n"
                f"Reason: {reason}\n{kind.failure_consequence}",
            )
            self._state.mark_failure_handled(job.name, ALERTED)


TO_ALERT, ALERTED, RETRIED_QUIETLY = "to alert", "alerted", "retried quietly"


class JobKindBase:
    """What every job kind shares: it may announce a failure; a kind that records progress overrides
    ``on_progress``. Each kind takes the ports it uses, and its own view of the state, in its constructor."""

    def __init__(self, publisher: EventPublisher):
        self._events = publisher

    def on_progress(self, job: JobRecord, status: JobStatus) -> None:
        pass  # most kinds change their records only when a job ends

    def announce_model_failure(self, job: JobRecord, reason: str) -> None:
        """ "Model Failed": a dataset's training, or a model's evaluation, ended without a usable result."""
        self._events.publish(
            events.MODEL_FAILED,
            {"dataset": job.dataset, "stage": str(job.kind), "job": job.name, "model_name": job.model_name,
             "status": str(job.status), "reason": reason},
        )  # fmt: skip


def failed(job: JobRecord) -> JobRecord:
    return replace(job, status=JobStatus.FAILED)


__all__ = [
    "ALERTED",
    "RETRIED_QUIETLY",
    "TO_ALERT",
    "IgnoredEvent",
    "JobKindBase",
    "JobKindHandler",
    "JobTracker",
    "StateChange",
    "failed",
]

"""Named reads and writes of SageMaker jobs: the record of each job the pipeline starts, how its failure's
handling went, and the jobs waiting for SageMaker capacity."""

from __future__ import annotations

from typing import Any

from pcam_pipeline.core.model_records import JobRecord
from pcam_pipeline.core.statuses import TERMINAL_JOB_STATUSES, JobStatus
from pcam_pipeline.state.access import CAPACITY_WAITS_PK, CURRENT, TableAccess, job_pk
from pcam_pipeline.state.conditions import Equals, Not, OneOf
from pcam_pipeline.state.leases import Lease, lapsed, lease_fields
from pcam_pipeline.state.table import now_iso


class JobRecords(TableAccess):
    # ------------------------------------------------------------------- jobs
    def job(self, name: str) -> JobRecord | None:
        return JobRecord.from_item(self.get(job_pk(name)), name=name)

    def create_job(self, job: JobRecord) -> bool:
        """Record a job about to be started; False if a record of that name exists already."""
        return self._put_new(job_pk(job.name), CURRENT, job.to_item())

    def forget_unstarted_job(self, name: str) -> None:
        """SageMaker refused to start it, or a job for newer inputs replaced it while it waited for capacity: no
        job of that name exists, so neither does its record (nor its capacity wait). Called by the scoring
        dispatcher, which holds the dispatch lease, and by the scheduled tick: no one else starts it meanwhile."""
        job = self.job(name)
        if job is not None and job.status is JobStatus.STARTING:
            self._delete(job_pk(name), CURRENT)
        self.forget_capacity_wait(name)  # after the record: a retry still finds the wait to forget

    def mark_job_started(self, name: str, **fields: Any) -> bool:
        started = {**fields, "status": JobStatus.IN_PROGRESS, "started_at": now_iso()}
        return self._set(job_pk(name), CURRENT, started, Equals("status", JobStatus.STARTING)) is not None

    def record_job_status(self, name: str, status: JobStatus, reason: str = "") -> bool:
        """A state change SageMaker reported; False (nothing written) once the job has ended."""
        fields: dict[str, Any] = {"status": status, **({"reason": reason} if reason else {})}
        if status.terminal:
            fields["ended_at"] = now_iso()
        return self._set(job_pk(name), CURRENT, fields, Not(OneOf("status", TERMINAL_JOB_STATUSES))) is not None

    def record_job_failure(self, name: str, status: JobStatus, reason: str) -> None:
        self._set(job_pk(name), CURRENT, {"status": status, "reason": reason, "ended_at": now_iso()})

    def mark_failure_handled(self, name: str, step: str) -> None:
        self._set(job_pk(name), CURRENT, {"failure_handled": step})

    def claim_failure_handling(self, name: str, claimer: str, finished: tuple[str, ...]) -> Lease | None:
        """Let one attempt at a time handle the job's failure (state/leases.py), until it reaches a ``finished``
        step. SageMaker may report one failure twice, at once, under two event ids; None for the second."""
        lease = Lease.for_this_invocation()
        unfinished = Not(OneOf("failure_handled", finished)) & lapsed("failure")
        claimed = self._set(job_pk(name), CURRENT, {"failure_claimer": claimer, **lease.fields("failure")}, unfinished)
        return lease if claimed is not None else None

    def release_failure_handling(self, name: str, lease: Lease) -> None:
        self._set(job_pk(name), CURRENT, {}, lease.held("failure"), remove=lease_fields("failure"))

    # ---------------------------------------------------------- capacity waits
    def wait_for_capacity(self, job_name: str, kind: str, **what: str) -> None:
        """SageMaker refused the job for capacity (a quota, throttling): the scheduled tick starts it again."""
        self._put_new(CAPACITY_WAITS_PK, job_name, {"kind": kind, "waiting_since": now_iso(), **what})

    def capacity_waits(self) -> list[dict[str, Any]]:
        return self.query(CAPACITY_WAITS_PK)

    def forget_capacity_wait(self, job_name: str) -> None:
        self._delete(CAPACITY_WAITS_PK, job_name)

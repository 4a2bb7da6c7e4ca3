"""The statuses of the state table's records. Their values are the strings stored in the table and
shown by ``pcam status``; enums compare equal to those strings."""

from __future__ import annotations

from enum import StrEnum


class FileStatus(StrEnum):
    RECEIVED = "received"
    STAGED = "staged"
    STAGING_BY_JOB = "staging by a SageMaker Processing job"  # too large for the ingest function
    LABELS_RECORDED = "labels recorded"
    SETTINGS_RECORDED = "training settings recorded"
    SIDECAR_RECORDED = "sidecar recorded"
    CONVERTING = "converting"
    CONVERTED = "converted"
    QUARANTINED = "quarantined"
    SUPERSEDED = "superseded"  # a newer upload of the key arrived first; this one is never converted
    FAILED = "failed"


class OwnerStatus(StrEnum):
    """Of a split or slide: its patches' conversion and readiness."""

    CONVERTING = "converting"
    WAITING_FOR_IMAGES = "waiting for images"
    READY = "ready"
    FAILED = "failed"


class JobStatus(StrEnum):
    """SageMaker's job statuses, and ``Starting`` between the pipeline's record and SageMaker's answer."""

    STARTING = "Starting"
    IN_PROGRESS = "InProgress"
    STOPPING = "Stopping"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_JOB_STATUSES

    @property
    def unsuccessful(self) -> bool:
        return self in (JobStatus.FAILED, JobStatus.STOPPED)


TERMINAL_JOB_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED)


class ModelStatus(StrEnum):
    CREATED = "created"
    AWAITING_TEST_SPLIT = "awaiting test split"
    EVALUATING = "evaluating"
    EVALUATED = "evaluated"
    EVALUATION_FAILED = "evaluation failed"


# Statuses of a model that has a SageMaker Model behind it and may score slides.
SERVABLE_MODEL_STATUSES = (
    ModelStatus.EVALUATING,
    ModelStatus.EVALUATED,
    ModelStatus.AWAITING_TEST_SPLIT,
    ModelStatus.EVALUATION_FAILED,
)


class ScoringStatus(StrEnum):
    WAITING_FOR_MODEL = "waiting for a model"
    QUEUED = "queued"  # waiting for a transform slot (MaxConcurrentTransformJobs) or SageMaker capacity
    SCORING = "scoring"
    SCORED = "scored"
    FAILED = "failed"

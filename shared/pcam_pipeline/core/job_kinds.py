"""The kinds of SageMaker job the pipeline starts, each with the SageMaker resource it is. This is the one
table the launcher (which Create… call), the job tracker (which events, which fields) and the tests' fake
SageMaker read; what a kind's completion means is its handler's (``JobKindHandler``). Adding a kind:
docs/architecture.md, "Adding a job kind".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class JobKind(StrEnum):
    TRAINING = "training"
    TUNING = "tuning"
    TEST_TRANSFORM = "test transform"
    VALIDATION_TRANSFORM = "validation transform"  # the validation split, for calibration and the threshold
    EVALUATION = "evaluation"
    SLIDE_SCORING = "slide scoring"
    SLIDE_STAGING = "slide staging"  # a slide too large for the ingest function, staged by a Processing job

    @property
    def trains(self) -> bool:
        return self in (JobKind.TRAINING, JobKind.TUNING)

    @property
    def resource(self) -> SageMakerResource:
        return RESOURCES[self]


@dataclass(frozen=True)
class SageMakerResource:
    """A kind of SageMaker job as SageMaker's API and its EventBridge events name it."""

    name: str  # "TrainingJob": CreateTrainingJob, TrainingJobName, TrainingJobStatus
    event_detail_type: str  # the detail-type of its "State Change" events (SageMaker DG, "Automating with EventBridge")

    @property
    def create_operation(self) -> str:
        return f"Create{self.name}"

    @property
    def name_field(self) -> str:
        return f"{self.name}Name"

    @property
    def status_field(self) -> str:
        return f"{self.name}Status"


TRAINING_JOB = SageMakerResource("TrainingJob", "SageMaker Training Job State Change")
TUNING_JOB = SageMakerResource("HyperParameterTuningJob", "SageMaker HyperParameter Tuning Job State Change")
TRANSFORM_JOB = SageMakerResource("TransformJob", "SageMaker Transform Job State Change")
PROCESSING_JOB = SageMakerResource("ProcessingJob", "SageMaker Processing Job State Change")

RESOURCES: dict[JobKind, SageMakerResource] = {
    JobKind.TRAINING: TRAINING_JOB,
    JobKind.TUNING: TUNING_JOB,
    JobKind.TEST_TRANSFORM: TRANSFORM_JOB,
    JobKind.VALIDATION_TRANSFORM: TRANSFORM_JOB,
    JobKind.EVALUATION: PROCESSING_JOB,
    JobKind.SLIDE_SCORING: TRANSFORM_JOB,
    JobKind.SLIDE_STAGING: PROCESSING_JOB,
}
# detail-type → the resource whose state changed (one event type can carry several kinds: a transform job
# scores a test split or slides; the job's record says which).
RESOURCE_BY_EVENT: dict[str, SageMakerResource] = {r.event_detail_type: r for r in RESOURCES.values()}

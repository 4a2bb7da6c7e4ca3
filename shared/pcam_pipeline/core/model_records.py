"""Typed records of the model side: the SageMaker jobs the pipeline started, the models they made and the
current model (``Record`` and ``present`` in ``records.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.core.records import Record
from pcam_pipeline.core.statuses import JobStatus, ModelStatus


@dataclass(frozen=True)
class JobRecord(Record):
    """A SageMaker job the pipeline started (``job#<name>``), with what it was started on."""

    _enums: ClassVar = {"kind": JobKind, "status": JobStatus}
    name: str
    kind: JobKind
    status: JobStatus = JobStatus.STARTING
    dataset: str | None = None
    slide_id: str | None = None
    run_id: str | None = None
    model_name: str | None = None
    reason: str = ""
    started_at: str | None = None
    ended_at: str | None = None
    # How far its failure's handling got: "to alert" (recorded and announced), "alerted" or "retried quietly";
    # a retried event finishes it.
    failure_handled: str | None = None
    # training and tuning
    train_manifest: str | None = None
    valid_manifest: str | None = None
    valid_images: str | None = None  # the validation split's images, scored to calibrate the model
    train_count: int | None = None
    valid_count: int | None = None
    hyperparameters: dict[str, Any] | None = None
    experiment: bool = False  # the dataset's training.json says "experiment": its models never score slides
    training_stain: dict[str, Any] | None = None  # the train split's stain and range (wsi/stain.training_reference)
    # test transform
    test_manifest: str | None = None
    test_images: str | None = None
    test_count: int | None = None
    predictions: str | None = None
    test_transform: str | None = None  # a validation transform: the test transform it follows
    # slide scoring: one job scores the slides in ``slides`` (slide_id, run_id, patch_count, image_prefix)
    manifest: str | None = None
    output_prefix: str | None = None
    patch_count: int | None = None
    slides: list[dict[str, Any]] | None = None

    @property
    def subject(self) -> str:
        """What the job is for, in an operator's words."""
        if self.dataset:
            return self.dataset
        if self.slides and len(self.slides) > 1:
            named = ", ".join(s["slide_id"] for s in self.slides[:3]) + (", …" if len(self.slides) > 3 else "")
            return f"{len(self.slides)} slides ({named})"
        return f"slide {self.slide_id}"

    def to_item(self) -> dict[str, Any]:
        return {k: v for k, v in super().to_item().items() if k != "name"}


@dataclass(frozen=True)
class ModelRecord(Record):
    """A trained model (``models``, ``model#<name>``), its evaluation and the promotion decision."""

    _enums: ClassVar = {"status": ModelStatus}
    model_name: str
    dataset: str
    training_job: str
    model_data_uri: str
    status: ModelStatus = ModelStatus.CREATED
    tuning_job: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    train_manifest: str | None = None
    valid_manifest: str | None = None
    valid_images: str | None = None
    train_count: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    # Fitted on the validation split by the evaluation (pcam_evaluation_job/calibration.py): what scoring applies.
    calibration: dict[str, Any] = field(default_factory=dict)
    operating_threshold: float | None = None
    decision: dict[str, Any] | None = None
    evaluation_prefix: str | None = None
    test_transform_job: str | None = None
    test_split: str | None = None  # lineage: "<dataset>/test <upload>" it was evaluated on; AUCs compare within one
    experiment: bool = False  # trained as an experiment (pcam smoke): never becomes current
    # The train split's stain, the range its shards span and its normalisation: what slides are compared with.
    training_stain: dict[str, Any] | None = None
    failure_reason: str = ""
    created_at: str | None = None
    evaluated_at: str | None = None

    @property
    def auc(self) -> float | None:
        return self.metrics.get("auc")


@dataclass(frozen=True)
class CurrentModel(Record):
    """Which model scores slides (``models``, ``current``), and the chain of models it replaced."""

    model_name: str
    promoted_at: str
    promoted_by: str
    reason: str
    dataset: str | None = None
    training_job: str | None = None
    model_data_uri: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    evaluation_prefix: str | None = None
    test_split: str | None = None  # None: promoted before lineage was recorded
    replaced: list[Any] = field(default_factory=list)
    action: str = "promoted"  # how it became current: promoted, promoted by hand, rolled back
    previous_model: str | None = None
    # Model Promoted was published; a retry finishes a change whose announcement failed. Records written
    # before this field existed were announced.
    announced: bool = True

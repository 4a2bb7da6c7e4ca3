"""Evaluating a model: Batch Transform of its dataset's test split, then of the validation split it was trained
with, then a scikit-learn processing job that calibrates it and chooses its operating threshold on the
validation outputs and measures it on the test outputs, then the pictures and the promotion gate. A model whose
dataset has no test split yet waits for one and is never promoted automatically until evaluated."""

from __future__ import annotations

from typing import Any

from pcam_pipeline.core import keys
from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.core.model_records import JobRecord
from pcam_pipeline.core.records import present
from pcam_pipeline.core.statuses import ModelStatus
from pcam_pipeline.models import inference_requests, sagemaker_jobs
from pcam_pipeline.models.evaluation_metrics import EvaluationMetrics, start_or_wait
from pcam_pipeline.models.job_tracker import JobKindBase


class ModelEvaluation(JobKindBase):
    kinds: tuple[JobKind, ...] = (JobKind.TEST_TRANSFORM, JobKind.VALIDATION_TRANSFORM, JobKind.EVALUATION)
    failure_consequence = "No model is promoted."

    def __init__(self, metrics: EvaluationMetrics):
        super().__init__(metrics.publisher)
        self._settings, self._state, self._blobs, self._jobs = (
            metrics.settings,
            metrics.state,
            metrics.blobs,
            metrics.jobs,
        )
        self.metrics = metrics

    def evaluate_waiting_models(self, dataset: str) -> dict[str, Any]:
        """A test split arrived: evaluate the dataset's models that were waiting for one."""
        waiting = [
            m.model_name
            for m in self._state.models()
            if m.dataset == dataset and m.status is ModelStatus.AWAITING_TEST_SPLIT
        ]
        for model_name in waiting:
            self.start_test_transform(model_name)
        return {"status": "evaluating waiting models", "models": waiting}

    def start_test_transform(self, model_name: str) -> dict[str, Any]:
        """Score the dataset's test split with the model (Batch Transform), or wait for a test split."""
        model = present(self._state.model(model_name), f"model {model_name}")
        test = self._state.split(model.dataset, "test")
        if not (test and test.ready):
            self._state.mark_model_awaiting_test_split(model_name)
            return {"evaluation": "waiting for a test split; not promoted automatically until evaluated"}
        name = sagemaker_jobs.job_name(model.dataset, f"{model_name}|{test.ready_token}", kind="test")
        earlier = model.test_transform_job if model.test_transform_job != name else None
        if earlier and not self._jobs.never_started(earlier):
            return {"evaluation": "already scored or scoring a test split", "transform_job": earlier}
        prefix = keys.evaluation_prefix(model_name)
        job = JobRecord(
            name=name,
            kind=JobKind.TEST_TRANSFORM,
            dataset=model.dataset,
            model_name=model_name,
            test_manifest=self._blobs.uri(present(test.manifest_key, "test split's manifest")),
            test_images=self._blobs.uri(present(test.image_prefix, "test split's images")),
            test_count=test.x_count,
            predictions=self._blobs.uri(prefix + "predictions/"),
        )
        self._jobs.record(job)
        test_split = f"{model.dataset}/test {test.ready_token}"
        # ``earlier`` never started (its test split changed while it waited for capacity): this one replaces it,
        # and the tick that started this one forgets it.
        if not self._state.mark_model_evaluating(model_name, prefix, name, test_split, replacing=earlier):
            return {"evaluation": "already evaluated", "transform_job": model.test_transform_job}
        tags = {"pcam:dataset": model.dataset, "pcam:model": model_name}
        images, predictions = present(job.test_images, "test images"), present(job.predictions, "predictions")
        request = inference_requests.transform_request(self._settings, name, model_name, images, predictions, tags)
        if not start_or_wait(self._jobs, self._state, job, request, model_name=model_name):
            return {"evaluation": "waiting for SageMaker capacity", "transform_job": name}
        return {"evaluation": "scoring the test split", "transform_job": name}

    def start_validation_transform(self, model_name: str, transform: JobRecord) -> dict[str, Any]:
        """Score the validation split the model was trained with: calibration and the threshold come from it."""
        model = present(self._state.model(model_name), f"model {model_name}")
        if not model.valid_images:  # trained before validation images were recorded: evaluated uncalibrated
            return self.start_evaluation(model_name, transform)
        name = sagemaker_jobs.job_name(model.dataset, f"{model_name}|{transform.name}", kind="valid")
        job = JobRecord(
            name=name,
            kind=JobKind.VALIDATION_TRANSFORM,
            dataset=model.dataset,
            model_name=model_name,
            valid_manifest=model.valid_manifest,
            valid_images=model.valid_images,
            predictions=self._blobs.uri(keys.evaluation_prefix(model_name) + "validation-predictions/"),
            test_transform=transform.name,
        )
        self._jobs.record(job)
        tags = {"pcam:dataset": model.dataset, "pcam:model": model_name}
        predictions = present(job.predictions, "predictions")
        request = inference_requests.transform_request(
            self._settings, name, model_name, model.valid_images, predictions, tags
        )
        if not start_or_wait(
            self._jobs, self._state, job, request, model_name=model_name, transform_job=transform.name
        ):
            return {"evaluation": "waiting for SageMaker capacity", "transform_job": name}
        return {"evaluation": "scoring the validation split", "transform_job": name}

    def start_evaluation(
        self, model_name: str, transform: JobRecord, validation: JobRecord | None = None
    ) -> dict[str, Any]:
        return self.metrics.start(model_name, transform, validation)

    # ------------------------------------------------------------ job kind
    def on_completed(self, job: JobRecord, detail: dict[str, Any], delivery: str) -> dict[str, Any]:
        model_name = present(job.model_name, f"model of {job.name}")
        if job.kind is JobKind.TEST_TRANSFORM:
            return self.start_validation_transform(model_name, present(self._state.job(job.name), f"job {job.name}"))
        if job.kind is JobKind.VALIDATION_TRANSFORM:
            validation = present(self._state.job(job.name), f"job {job.name}")
            test = present(validation.test_transform, f"test transform of {job.name}")
            return self.start_evaluation(model_name, present(self._state.job(test), f"job {test}"), validation)
        return self.metrics.conclude(model_name, delivery)

    def on_failed(self, job: JobRecord, reason: str) -> None:
        self._state.record_model_evaluation_failed(
            present(job.model_name, f"model of {job.name}"), f"{job.kind} {job.name}: {reason}"
        )
        self.announce_model_failure(job, reason)

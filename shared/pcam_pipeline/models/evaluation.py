"""Evaluating a model: Batch Transform of its dataset's test split, then a scikit-learn processing job
computing the metrics, then the ROC picture and the promotion gate. A model whose dataset has no test
split yet waits for one and is never promoted automatically until evaluated."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from typing import Any

from pcam_pipeline.aws import events
from pcam_pipeline.aws.blob_store import MissingObject
from pcam_pipeline.core import keys
from pcam_pipeline.core.errors import CapacityRefused, JobFailed
from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.core.model_records import JobRecord
from pcam_pipeline.core.ports import BlobStore, EventPublisher
from pcam_pipeline.core.records import present
from pcam_pipeline.core.settings import ModelSettings
from pcam_pipeline.core.statuses import ModelStatus
from pcam_pipeline.models import inference_requests, sagemaker_jobs
from pcam_pipeline.models.evaluation_report import roc_png
from pcam_pipeline.models.job_tracker import JobKindBase, JobTracker
from pcam_pipeline.models.promotion import PromotedModels, metric_summary
from pcam_pipeline.state.views import EvaluationState

EVALUATION_SCRIPT = "evaluate_model.py"


class ModelEvaluation(JobKindBase):
    kinds: tuple[JobKind, ...] = (JobKind.TEST_TRANSFORM, JobKind.EVALUATION)
    failure_consequence = "No model is promoted."

    def __init__(
        self,
        settings: ModelSettings,
        state: EvaluationState,
        blobs: BlobStore,
        jobs: JobTracker,
        registry: PromotedModels,
        publisher: EventPublisher,
    ):
        super().__init__(publisher)
        self._settings, self._state, self._blobs = settings.sagemaker, state, blobs
        self._jobs, self._registry = jobs, registry
        self._minimum_auc, self._threshold = settings.minimum_auc, settings.decision_threshold

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

    def start_evaluation(self, model_name: str, transform: JobRecord) -> dict[str, Any]:
        """Compute the model's test-set metrics from its predictions in a scikit-learn processing job."""
        model = present(self._state.model(model_name), f"model {model_name}")
        prefix = keys.evaluation_prefix(model_name)
        context = {
            "model_name": model_name,
            "dataset": model.dataset,
            "training_job": model.training_job,
            "tuning_job": model.tuning_job,
            "hyperparameters": model.hyperparameters,
            "model_data_uri": model.model_data_uri,
            "train_manifest": model.train_manifest,
            "test_manifest": transform.test_manifest,
            "images_prefix": transform.test_images,
            "transform_job": transform.name,
            "threshold": self._threshold,
            "model_created_at": model.created_at,
            "transform_started_at": transform.started_at,
            "transform_ended_at": transform.ended_at,
        }
        self._blobs.put_json(prefix + "context.json", context)
        name = sagemaker_jobs.job_name(model.dataset, f"{model_name}|{transform.name}", kind="metrics")
        job = JobRecord(name=name, kind=JobKind.EVALUATION, dataset=model.dataset, model_name=model_name)
        self._jobs.record(job)
        request = inference_requests.evaluation_request(
            self._settings,
            name,
            evaluation_script_uri(self._blobs),
            {
                "labels": present(transform.test_manifest, f"test manifest of {transform.name}"),
                "predictions": present(transform.predictions, f"predictions of {transform.name}"),
                "context": self._blobs.uri(prefix + "context.json"),
            },
            self._blobs.uri(prefix.rstrip("/")),
            {"pcam:dataset": model.dataset, "pcam:model": model_name},
        )
        if not start_or_wait(
            self._jobs, self._state, job, request, model_name=model_name, transform_job=transform.name
        ):
            return {"evaluation": "waiting for SageMaker capacity", "evaluation_job": name}
        return {"evaluation": "computing metrics", "evaluation_job": name}

    def conclude_evaluation(self, model_name: str, delivery: str) -> dict[str, Any]:
        """Draw the ROC picture, record the metrics and let the promotion gate decide; announce it once.

        ``delivery`` identifies the event being handled: a retry of it may announce again, another
        delivery of the same job's completion may not."""
        prefix = keys.evaluation_prefix(model_name)
        try:
            evaluation = json.loads(self._blobs.get_bytes(prefix + "metrics.json"))
        except (MissingObject, ValueError) as exc:
            raise JobFailed(f"the evaluation of {model_name} left no readable metrics.json: {exc}") from exc
        self._blobs.put_bytes(prefix + "roc.png", roc_png(evaluation, model_name), "image/png")
        summary = metric_summary(evaluation)
        self._state.record_model_evaluated(model_name, summary, evaluation.get("evaluated_at"))
        decision = self._registry.apply_gate(model_name, self._minimum_auc)
        result = {"promoted": decision.promote, "reason": decision.reason, "auc": summary.get("auc")}
        if not self._state.claim_evaluation_announcement(model_name, delivery):
            return {**result, "announced": "already"}
        self._events.publish(
            events.MODEL_EVALUATED,
            {
                "model_name": model_name,
                "dataset": evaluation.get("dataset"),
                "metrics": summary,
                "metrics_uri": self._blobs.uri(prefix + "metrics.json"),
                "promoted": decision.promote,
                "reason": decision.reason,
            },
        )
        return result

    # ------------------------------------------------------------ job kind
    def on_completed(self, job: JobRecord, detail: dict[str, Any], delivery: str) -> dict[str, Any]:
        model_name = present(job.model_name, f"model of {job.name}")
        if job.kind is JobKind.TEST_TRANSFORM:
            return self.start_evaluation(model_name, present(self._state.job(job.name), f"job {job.name}"))
        return self.conclude_evaluation(model_name, delivery)

    def on_failed(self, job: JobRecord, reason: str) -> None:
        self._state.record_model_evaluation_failed(
            present(job.model_name, f"model of {job.name}"), f"{job.kind} {job.name}: {reason}"
        )
        self.announce_model_failure(job, reason)


def start_or_wait(
    jobs: JobTracker, state: EvaluationState, job: JobRecord, request: dict[str, Any], **what: str
) -> bool:
    """Start the job; False when SageMaker has no capacity now (recorded: the scheduled tick tries again)."""
    try:
        jobs.start_once(job, request)
    except CapacityRefused:
        state.wait_for_capacity(job.name, str(job.kind), **what)
        return False
    return True


def evaluation_script_uri(blobs: BlobStore) -> str:
    """Upload the evaluation script once per version of it (content-addressed key)."""
    body = resources.files("pcam_evaluation_job").joinpath(EVALUATION_SCRIPT).read_bytes()
    key = f"{keys.CODE}evaluate_model-{hashlib.sha256(body).hexdigest()[:12]}/{EVALUATION_SCRIPT}"
    if not blobs.exists(key):
        blobs.put_bytes(key, body, "text/x-python")
    return blobs.uri(key)

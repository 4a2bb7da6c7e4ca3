"""The evaluation's last steps: the scikit-learn processing job that calibrates a model on its validation outputs,
chooses its operating threshold there and measures it on its test outputs; then the pictures, the promotion
gate and "Model Evaluated"."""

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
from pcam_pipeline.models import inference_requests, sagemaker_jobs
from pcam_pipeline.models.evaluation_report import reliability_png, roc_png
from pcam_pipeline.models.job_tracker import JobTracker
from pcam_pipeline.models.promotion import PromotedModels, metric_summary
from pcam_pipeline.state.views import EvaluationState

EVALUATION_SCRIPT = "evaluate_model.py"
EVALUATION_CODE = (EVALUATION_SCRIPT, "calibration.py")  # the script and the module beside it


class EvaluationMetrics:
    """The metrics job and the conclusion drawn from it."""

    def __init__(
        self,
        settings: ModelSettings,
        state: EvaluationState,
        blobs: BlobStore,
        jobs: JobTracker,
        registry: PromotedModels,
        publisher: EventPublisher,
    ):
        # The ports the evaluation's other steps share (``ModelEvaluation``).
        self.settings, self.state, self.blobs = settings.sagemaker, state, blobs
        self.jobs, self.registry, self.publisher = jobs, registry, publisher
        self._minimum_auc, self._minimum_sensitivity = settings.minimum_auc, settings.minimum_sensitivity
        self._threshold_override, self._target = settings.decision_threshold, settings.target_sensitivity

    def start(self, model_name: str, transform: JobRecord, validation: JobRecord | None = None) -> dict[str, Any]:
        """Calibrate the model on its validation outputs and measure it on its test outputs, in a scikit-learn
        processing job (uncalibrated without validation outputs)."""
        model = present(self.state.model(model_name), f"model {model_name}")
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
            "valid_manifest": validation.valid_manifest if validation else None,
            "valid_images_prefix": validation.valid_images if validation else None,
            "transform_job": transform.name,
            "validation_transform_job": validation.name if validation else None,
            "target_sensitivity": self._target,
            "threshold_override": self._threshold_override,
            "model_created_at": model.created_at,
            "transform_started_at": transform.started_at,
            "transform_ended_at": transform.ended_at,
        }
        self.blobs.put_json(prefix + "context.json", context)
        name = sagemaker_jobs.job_name(model.dataset, f"{model_name}|{transform.name}", kind="metrics")
        job = JobRecord(name=name, kind=JobKind.EVALUATION, dataset=model.dataset, model_name=model_name)
        self.jobs.record(job)
        inputs = {
            "labels": present(transform.test_manifest, f"test manifest of {transform.name}"),
            "predictions": present(transform.predictions, f"predictions of {transform.name}"),
            "context": self.blobs.uri(prefix + "context.json"),
        }
        if validation:
            inputs["valid_labels"] = present(validation.valid_manifest, f"validation manifest of {validation.name}")
            inputs["valid_predictions"] = present(validation.predictions, f"predictions of {validation.name}")
        request = inference_requests.evaluation_request(
            self.settings,
            name,
            evaluation_script_uri(self.blobs),
            inputs,
            self.blobs.uri(prefix.rstrip("/")),
            {"pcam:dataset": model.dataset, "pcam:model": model_name},
        )
        waiting = {"model_name": model_name, "transform_job": transform.name}
        if validation:
            waiting["validation_job"] = validation.name
        if not start_or_wait(self.jobs, self.state, job, request, **waiting):
            return {"evaluation": "waiting for SageMaker capacity", "evaluation_job": name}
        return {"evaluation": "computing metrics", "evaluation_job": name}

    def conclude(self, model_name: str, delivery: str) -> dict[str, Any]:
        """Draw the ROC picture, record the metrics and let the promotion gate decide; announce it once.

        ``delivery`` identifies the event being handled: a retry of it may announce again, another
        delivery of the same job's completion may not."""
        prefix = keys.evaluation_prefix(model_name)
        try:
            evaluation = json.loads(self.blobs.get_bytes(prefix + "metrics.json"))
        except (MissingObject, ValueError) as exc:
            raise JobFailed(f"the evaluation of {model_name} left no readable metrics.json: {exc}") from exc
        self.blobs.put_bytes(prefix + "roc.png", roc_png(evaluation, model_name), "image/png")
        if "calibration" in evaluation:
            self.blobs.put_bytes(prefix + "reliability.png", reliability_png(evaluation, model_name), "image/png")
        summary = metric_summary(evaluation)
        fitted = {
            "calibration": {k: v for k, v in evaluation.get("calibration", {}).items() if k != "test"},
            "operating_threshold": evaluation.get("operating_point", {}).get("threshold"),
        }
        self.state.record_model_evaluated(model_name, summary, evaluation.get("evaluated_at"), **fitted)
        decision = self.registry.apply_gate(model_name, self._minimum_auc, self._minimum_sensitivity)
        result = {"promoted": decision.promote, "reason": decision.reason, "auc": summary.get("auc")}
        if not self.state.claim_evaluation_announcement(model_name, delivery):
            return {**result, "announced": "already"}
        self.publisher.publish(
            events.MODEL_EVALUATED,
            {
                "model_name": model_name,
                "dataset": evaluation.get("dataset"),
                "metrics": summary,
                "metrics_uri": self.blobs.uri(prefix + "metrics.json"),
                "promoted": decision.promote,
                "reason": decision.reason,
            },
        )
        return result


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
    """Upload the evaluation code once per version of it (a content-addressed folder); the script's URI."""
    package = resources.files("pcam_evaluation_job")
    bodies = {name: package.joinpath(name).read_bytes() for name in EVALUATION_CODE}
    digest = hashlib.sha256(b"".join(bodies[name] for name in EVALUATION_CODE)).hexdigest()[:12]
    folder = f"{keys.CODE}evaluate_model-{digest}/"
    for name, body in bodies.items():  # the script last: present, it says the folder is complete
        if name != EVALUATION_SCRIPT and not blobs.exists(folder + name):
            blobs.put_bytes(folder + name, body, "text/x-python")
    if not blobs.exists(folder + EVALUATION_SCRIPT):
        blobs.put_bytes(folder + EVALUATION_SCRIPT, bodies[EVALUATION_SCRIPT], "text/x-python")
    return blobs.uri(folder + EVALUATION_SCRIPT)

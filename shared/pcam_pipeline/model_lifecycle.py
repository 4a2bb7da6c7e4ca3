"""The SageMaker side of the pipeline, driven by its own events and SageMaker's state-change events.

dataset train+valid ready → training (or tuning) job → Model → Batch Transform of the test split
→ evaluation job (scikit-learn) → ROC picture → promotion gate; slide ready (or a model promoted while
slides wait) → Batch Transform of the slide → predictions (``slide_scoring``).

Every step is idempotent: job names are derived from their inputs (SageMaker refuses a second job of
the same name), records are created conditionally, and a repeated event repeats no work.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources

import boto3
from boto3.dynamodb.conditions import Attr
from botocore.config import Config
from botocore.exceptions import ClientError

from pcam_pipeline import events, keys, sagemaker_jobs, storage
from pcam_pipeline.alerts import Alerter
from pcam_pipeline.errors import PipelineError, StorageError
from pcam_pipeline.evaluation import roc_png
from pcam_pipeline.observability import logger, metrics
from pcam_pipeline.promotion import ModelRegistry, metric_summary
from pcam_pipeline.sagemaker_jobs import InvalidSageMakerRequest, TrainingInputs
from pcam_pipeline.settings import ModelSettings
from pcam_pipeline.slide_scoring import SLIDE_SCORING, ScoringFailed, SlideScorer
from pcam_pipeline.state import CURRENT, MODELS_PK, StateStore, dataset_pk, job_pk, model_sk, now_iso, split_pk
from pcam_training.config import TrainingConfigError

TRAINING, TUNING, TEST_TRANSFORM, EVALUATION = "training", "tuning", "test transform", "evaluation"
TERMINAL = ("Completed", "Failed", "Stopped")
STARTING = "Starting"
EVALUATION_SCRIPT = "evaluate_model.py"
# detail-type → (kind of job, field naming the job, field holding its status)
SAGEMAKER_EVENTS = {
    "SageMaker Training Job State Change": ("TrainingJobName", "TrainingJobStatus"),
    "SageMaker HyperParameter Tuning Job State Change": (
        "HyperParameterTuningJobName",
        "HyperParameterTuningJobStatus",
    ),
    "SageMaker Transform Job State Change": ("TransformJobName", "TransformJobStatus"),
    "SageMaker Processing Job State Change": ("ProcessingJobName", "ProcessingJobStatus"),
}
_RETRYING = Config(retries={"mode": "standard", "max_attempts": 8})


def _ready(split: dict | None) -> bool:
    return bool(split) and split.get("status") == "ready" and "manifest_key" in split


def _already_exists(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return error.get("Code") == "ResourceInUse" or (
        error.get("Code") == "ValidationException" and "already exist" in error.get("Message", "")
    )


class ModelLifecycle:
    def __init__(self, settings: ModelSettings, s3=None, sagemaker=None, state=None, publisher=None, alerter=None):
        self._settings = settings
        self._bucket = settings.bucket
        self._s3 = s3 or storage.s3_client()
        self._sagemaker = sagemaker or boto3.client("sagemaker", config=_RETRYING)
        self._state = state or StateStore(settings.state_table)
        publisher = publisher or events.EventPublisher(settings.event_bus)
        self._events = publisher
        self._alerts = alerter or Alerter(settings.alert_topic_arn)
        self.registry = ModelRegistry(self._state, publisher)
        self.slides = SlideScorer(
            settings, self._s3, self._sagemaker, self._state, publisher, self.registry, self._start_once
        )

    def _uri(self, key: str) -> str:
        return f"s3://{self._bucket}/{key}"

    def on_event(self, detail_type: str, detail: dict) -> dict:
        """One event from either bus: a split became ready, or a SageMaker job changed state."""
        if detail_type == events.SPLIT_READY:
            return self.on_split_ready(detail)
        if detail_type == events.SLIDE_READY:
            return self.slides.on_slide_ready(detail)
        if detail_type == events.MODEL_PROMOTED:
            return self.slides.score_waiting_slides()
        if detail_type in SAGEMAKER_EVENTS:
            return self.on_sagemaker_event(detail_type, detail)
        return {"status": "ignored", "reason": f"not an event this function handles: {detail_type!r}"}

    # ================================================================ datasets
    def on_split_ready(self, detail: dict) -> dict:
        logger.append_keys(dataset=detail["dataset"], split=detail["split"], run_id=detail.get("run_id"))
        if detail["split"] == "test":
            return self.evaluate_waiting_models(detail["dataset"])
        return self.start_training(detail["dataset"])

    def start_training(self, dataset: str) -> dict:
        """Start one training (or tuning) job for the dataset's current train and valid splits."""
        train, valid = (self._state.get(split_pk(dataset, split)) for split in ("train", "valid"))
        if not (_ready(train) and _ready(valid)):
            return {"status": "waiting for both train and valid", "dataset": dataset}
        sagemaker = self._settings.sagemaker
        tuning = sagemaker.tuning_max_jobs > 0
        identity = f"{train['ready_token']}|{valid['ready_token']}"
        if tuning:
            name = sagemaker_jobs.job_name(dataset, identity, sagemaker_jobs.TUNING_JOB_NAME_LIMIT, kind="tune")
        else:
            name = sagemaker_jobs.job_name(dataset, identity, kind="train")
        job = {
            "kind": TUNING if tuning else TRAINING,
            "dataset": dataset,
            "status": STARTING,
            "train_manifest": self._uri(train["manifest_key"]),
            "valid_manifest": self._uri(valid["manifest_key"]),
            "train_count": train["x_count"],
            "valid_count": valid["x_count"],
        }
        if not self._state.put_new(job_pk(name), CURRENT, job) and self._state.get(job_pk(name))["status"] != STARTING:
            return {"status": "already started", "job": name, "kind": job["kind"]}
        self._record_dataset(dataset, latest_job=name, training_status=STARTING)
        try:
            inputs = TrainingInputs(
                name,
                job["train_manifest"],
                job["valid_manifest"],
                train["x_count"],
                train.get("image_edge", 96),
                tags={"pcam:dataset": dataset[:256], "pcam:inputs": identity[:256]},
            )
            if tuning:
                request = sagemaker_jobs.tuning_job_request(sagemaker, inputs)
                create = self._sagemaker.create_hyper_parameter_tuning_job
            else:
                request = sagemaker_jobs.training_job_request(sagemaker, inputs)
                create = self._sagemaker.create_training_job
        except (InvalidSageMakerRequest, TrainingConfigError) as exc:
            # A deployment setting SageMaker cannot accept: retrying cannot help, operators must fix it.
            self._job_failed(name, f"the job request is invalid: {exc}", {**job, "status": "Failed"})
            return {"status": "failed", "job": name, "reason": str(exc)}
        started = self._start_once(name, create, request, hyperparameters=inputs.hyperparameters(sagemaker))
        return {"status": "started" if started else "already started", "job": name, "kind": job["kind"]}

    def _start_once(self, name: str, create, request: dict, **fields) -> bool:
        """Create the job unless its record says it was already started; SageMaker refuses a duplicate name."""
        job = self._state.get(job_pk(name))
        if job is None or job["status"] != STARTING:
            return False
        try:
            create(**request)
        except ClientError as exc:
            if not _already_exists(exc):
                raise StorageError(f"SageMaker refused to start {name}: {exc}") from exc
        self._state.update(
            job_pk(name),
            CURRENT,
            {**fields, "status": "InProgress", "started_at": now_iso()},
            condition=Attr("status").eq(STARTING),
        )
        metrics.add_metric(name="SageMakerJobsStarted", unit="Count", value=1)
        logger.info("SageMaker job started", extra={"job": name, "kind": job["kind"]})
        return True

    def _record_dataset(self, dataset: str, **fields) -> None:
        self._state.update(dataset_pk(dataset), CURRENT, {"dataset": dataset, **fields})

    # ========================================================== SageMaker events
    def on_sagemaker_event(self, detail_type: str, detail: dict) -> dict:
        name_field, status_field = SAGEMAKER_EVENTS[detail_type]
        name, status = detail[name_field], detail[status_field]
        job = self._state.get(job_pk(name))
        if job is None:
            return {"status": "ignored", "job": name, "reason": "not started by this pipeline"}
        # Correlation: the job, and the dataset or slide (and its upload) and model it belongs to.
        logger.append_keys(
            job=name,
            **{k: job[k] for k in ("dataset", "slide_id", "run_id", "model_name") if job.get(k)},
        )
        reason = (detail.get("FailureReason") or detail.get("ExitMessage") or "") if status != "Completed" else ""
        terminal_already = job["status"] in TERMINAL
        if not terminal_already:
            fields = {"status": status, **({"reason": reason} if reason else {})}
            if status in TERMINAL:
                fields["ended_at"] = now_iso()
            self._state.update(job_pk(name), CURRENT, fields, condition=~Attr("status").is_in(list(TERMINAL)))
            if job["kind"] in (TRAINING, TUNING):
                self._record_dataset(job["dataset"], training_status=status)
        elif status != job["status"]:
            return {"status": "ignored", "job": name, "reason": f"late {status} event for a {job['status']} job"}
        if status in ("Failed", "Stopped"):
            if not terminal_already:
                self._job_failed(name, reason or f"the job was {status.lower()}", {**job, "status": status})
            return {"status": "recorded", "job": name, "job_status": status}
        if status != "Completed":
            return {"status": "recorded", "job": name, "job_status": status}
        follow_up = {
            TRAINING: lambda: self._training_completed(name, job, detail),
            TUNING: lambda: self._tuning_completed(name, job),
            TEST_TRANSFORM: lambda: self.start_evaluation(job["model_name"], name),
            EVALUATION: lambda: self.conclude_evaluation(job["model_name"]),
            SLIDE_SCORING: lambda: self._slide_transform_completed(name),
        }[job["kind"]]
        return {"status": "completed", "job": name, **follow_up()}

    def _job_failed(self, name: str, reason: str, job: dict) -> None:
        self._state.update(job_pk(name), CURRENT, {"status": job["status"], "reason": reason, "ended_at": now_iso()})
        subject = job.get("dataset") or f"slide {job.get('slide_id')}"
        if job["kind"] in (TRAINING, TUNING):
            self._record_dataset(job["dataset"], training_status=job["status"], failure_reason=reason)
        elif job["kind"] == SLIDE_SCORING:
            self.slides.scoring_failed(job, f"transform {name}: {reason}")
        else:
            self._state.update(
                MODELS_PK,
                model_sk(job["model_name"]),
                {"status": "evaluation failed", "failure_reason": f"{job['kind']} {name}: {reason}"},
            )
        metrics.add_metric(name="SageMakerJobsFailed", unit="Count", value=1)
        consequence = "No result is written for the slide." if job["kind"] == SLIDE_SCORING else "No model is promoted."
        self._alerts.alert(
            f"{job['kind']} job {job['status'].lower()} for {subject}",
            f"SageMaker {job['kind']} job {name} ({job['status']}) for {subject}.\nReason: {reason}\n{consequence}",
        )

    def _slide_transform_completed(self, name: str) -> dict:
        """A finished slide transform whose outputs cannot be assembled fails the slide (no partial CSV)."""
        job = self._state.get(job_pk(name))
        try:
            return self.slides.transform_completed(name, job)
        except ScoringFailed as exc:
            self._job_failed(name, str(exc), {**job, "status": "Failed"})
            return {"status": "failed", "slide_id": job["slide_id"], "reason": str(exc)}

    # ================================================================ models
    def _training_completed(self, name: str, job: dict, detail: dict) -> dict:
        description = (
            detail if "ModelArtifacts" in detail else self._sagemaker.describe_training_job(TrainingJobName=name)
        )
        return self.register_model(name, job, description)

    def _tuning_completed(self, name: str, job: dict) -> dict:
        # The tuning event does not name the best job: ask SageMaker.
        tuning = self._sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        best = tuning["BestTrainingJob"]["TrainingJobName"]
        description = self._sagemaker.describe_training_job(TrainingJobName=best)
        return self.register_model(best, {**job, "tuning_job": name}, description)

    def register_model(self, training_job: str, job: dict, description: dict) -> dict:
        """Create the SageMaker Model of a finished training job, then evaluate it if a test split exists."""
        model_name = training_job
        model_data = description["ModelArtifacts"]["S3ModelArtifacts"]
        request = sagemaker_jobs.model_request(
            self._settings.sagemaker, model_name, model_data, {"pcam:dataset": job["dataset"][:256]}
        )
        try:
            self._sagemaker.create_model(**request)
        except ClientError as exc:
            if not _already_exists(exc):
                raise StorageError(f"SageMaker refused to create model {model_name}: {exc}") from exc
        self._state.put_new(
            MODELS_PK,
            model_sk(model_name),
            {
                "model_name": model_name,
                "dataset": job["dataset"],
                "training_job": training_job,
                "tuning_job": job.get("tuning_job"),
                "model_data_uri": model_data,
                "hyperparameters": description.get("HyperParameters", {}),
                "train_manifest": job.get("train_manifest"),
                "valid_manifest": job.get("valid_manifest"),
                "train_count": job.get("train_count"),
                "status": "created",
            },
        )
        self._record_dataset(job["dataset"], latest_model=model_name)
        return {"model": model_name, **self.start_test_transform(model_name)}

    # ============================================================= evaluation
    def evaluate_waiting_models(self, dataset: str) -> dict:
        waiting = [
            m["model_name"]
            for m in self.registry.models()
            if m.get("dataset") == dataset and m.get("status") == "awaiting test split"
        ]
        for model_name in waiting:
            self.start_test_transform(model_name)
        return {"status": "evaluating waiting models", "models": waiting}

    def start_test_transform(self, model_name: str) -> dict:
        """Score the dataset's test split with the model (Batch Transform), or wait for a test split."""
        model = self.registry.model(model_name)
        test = self._state.get(split_pk(model["dataset"], "test"))
        if not _ready(test):
            self._state.update(
                MODELS_PK,
                model_sk(model_name),
                {"status": "awaiting test split"},
                condition=Attr("status").eq("created"),
            )
            return {"evaluation": "waiting for a test split; not promoted automatically until evaluated"}
        name = sagemaker_jobs.job_name(model["dataset"], f"{model_name}|{test['ready_token']}", kind="test")
        prefix = keys.evaluation_prefix(model_name)
        job = {
            "kind": TEST_TRANSFORM,
            "dataset": model["dataset"],
            "model_name": model_name,
            "status": STARTING,
            "test_manifest": self._uri(test["manifest_key"]),
            "test_images": self._uri(test["image_prefix"]),
            "test_count": test["x_count"],
            "predictions": self._uri(prefix + "predictions/"),
        }
        self._state.put_new(job_pk(name), CURRENT, job)
        self._state.update(
            MODELS_PK,
            model_sk(model_name),
            {"status": "evaluating", "evaluation_prefix": prefix, "test_transform_job": name},
        )
        request = sagemaker_jobs.transform_request(
            self._settings.sagemaker,
            name,
            model_name,
            job["test_images"],
            job["predictions"],
            {"pcam:dataset": model["dataset"][:256], "pcam:model": model_name},
        )
        self._start_once(name, self._sagemaker.create_transform_job, request)
        return {"evaluation": "scoring the test split", "transform_job": name}

    def _evaluation_script_uri(self) -> str:
        """Upload the evaluation script once per version of it (content-addressed key)."""
        body = resources.files("pcam_pipeline").joinpath(EVALUATION_SCRIPT).read_bytes()
        key = f"{keys.CODE}evaluate_model-{hashlib.sha256(body).hexdigest()[:12]}/{EVALUATION_SCRIPT}"
        if not storage.object_exists(self._s3, self._bucket, key):
            self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="text/x-python")
        return self._uri(key)

    def start_evaluation(self, model_name: str, transform_job: str) -> dict:
        """Compute the model's test-set metrics from its predictions in a scikit-learn processing job."""
        model = self.registry.model(model_name)
        transform = self._state.get(job_pk(transform_job))
        prefix = keys.evaluation_prefix(model_name)
        context = {
            "model_name": model_name,
            "dataset": model["dataset"],
            "training_job": model["training_job"],
            "tuning_job": model.get("tuning_job"),
            "hyperparameters": model.get("hyperparameters", {}),
            "model_data_uri": model["model_data_uri"],
            "train_manifest": model.get("train_manifest"),
            "test_manifest": transform["test_manifest"],
            "images_prefix": transform["test_images"],
            "transform_job": transform_job,
            "threshold": self._settings.decision_threshold,
            "model_created_at": model.get("created_at"),
            "transform_started_at": transform.get("started_at"),
            "transform_ended_at": transform.get("ended_at"),
        }
        storage.put_json(self._s3, self._bucket, prefix + "context.json", context)
        name = sagemaker_jobs.job_name(model["dataset"], f"{model_name}|{transform_job}", kind="metrics")
        self._state.put_new(
            job_pk(name),
            CURRENT,
            {"kind": EVALUATION, "dataset": model["dataset"], "model_name": model_name, "status": STARTING},
        )
        request = sagemaker_jobs.evaluation_request(
            self._settings.sagemaker,
            name,
            self._evaluation_script_uri(),
            {
                "labels": transform["test_manifest"],
                "predictions": transform["predictions"],
                "context": self._uri(prefix + "context.json"),
            },
            self._uri(prefix.rstrip("/")),
            {"pcam:dataset": model["dataset"][:256], "pcam:model": model_name},
        )
        self._start_once(name, self._sagemaker.create_processing_job, request)
        return {"evaluation": "computing metrics", "evaluation_job": name}

    def conclude_evaluation(self, model_name: str) -> dict:
        """Draw the ROC picture, record the metrics and let the promotion gate decide."""
        prefix = keys.evaluation_prefix(model_name)
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=prefix + "metrics.json")["Body"].read()
            evaluation = json.loads(body)
        except (ClientError, ValueError) as exc:
            raise PipelineError(f"the evaluation of {model_name} left no readable metrics.json: {exc}") from exc
        self._s3.put_object(
            Bucket=self._bucket, Key=prefix + "roc.png", Body=roc_png(evaluation, model_name), ContentType="image/png"
        )
        summary = metric_summary(evaluation)
        self._state.update(
            MODELS_PK,
            model_sk(model_name),
            {"status": "evaluated", "metrics": summary, "evaluated_at": evaluation.get("evaluated_at")},
        )
        decision = self.registry.apply_gate(model_name, self._settings.minimum_auc)
        self._events.publish(
            events.MODEL_EVALUATED,
            {
                "model_name": model_name,
                "dataset": evaluation.get("dataset"),
                "metrics": summary,
                "metrics_uri": self._uri(prefix + "metrics.json"),
                "promoted": decision.promote,
                "reason": decision.reason,
            },
        )
        return {"promoted": decision.promote, "reason": decision.reason, "auc": summary.get("auc")}

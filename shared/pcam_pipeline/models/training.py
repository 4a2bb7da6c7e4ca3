"""Training and tuning jobs: a dataset's train and valid splits ready → one job → a SageMaker Model,
handed to evaluation. One job per combination of uploads: its name derives from them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pcam_pipeline.core.errors import CapacityRefused, InvalidJobRequest, QuotaIsZero
from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.core.model_records import JobRecord, ModelRecord
from pcam_pipeline.core.ports import BlobStore, EventPublisher, JobLauncher
from pcam_pipeline.core.records import present
from pcam_pipeline.core.statuses import JobStatus
from pcam_pipeline.ingestion.shard_outputs import stain_samples
from pcam_pipeline.models import inference_requests, sagemaker_jobs
from pcam_pipeline.models.evaluation import ModelEvaluation
from pcam_pipeline.models.job_tracker import JobKindBase, JobTracker, failed
from pcam_pipeline.models.sagemaker_jobs import SageMakerSettings, TrainingInputs
from pcam_pipeline.state.views import TrainingState
from pcam_pipeline.wsi import stain
from pcam_training.config import TrainingConfigError


class ModelTraining(JobKindBase):
    kinds: tuple[JobKind, ...] = (JobKind.TRAINING, JobKind.TUNING)
    failure_consequence = "No model is promoted."

    def __init__(
        self,
        settings: SageMakerSettings,
        state: TrainingState,
        blobs: BlobStore,
        launcher: JobLauncher,
        jobs: JobTracker,
        publisher: EventPublisher,
        evaluation: ModelEvaluation,
    ):
        super().__init__(publisher)
        self._settings, self._state, self._blobs, self._launcher = settings, state, blobs, launcher
        self._jobs, self._evaluation = jobs, evaluation

    def start_training(self, dataset: str) -> dict[str, Any]:
        """Start one training (or tuning) job for the dataset's current train and valid splits."""
        train, valid = self._state.split(dataset, "train"), self._state.split(dataset, "valid")
        if not (train and train.ready and valid and valid.ready):
            return {"status": "waiting for both train and valid", "dataset": dataset}
        own_settings = self._state.training_settings(dataset)
        settings = self._settings.for_dataset(own_settings)
        tuning = settings.tuning_max_jobs > 0
        identity = f"{train.ready_token}|{valid.ready_token}"
        if tuning:
            name = sagemaker_jobs.job_name(dataset, identity, sagemaker_jobs.TUNING_JOB_NAME_LIMIT, kind="tune")
        else:
            name = sagemaker_jobs.job_name(dataset, identity, kind="train")
        train_uri = self._blobs.uri(present(train.manifest_key, f"{dataset}/train's manifest"))
        valid_uri = self._blobs.uri(present(valid.manifest_key, f"{dataset}/valid's manifest"))
        # The name derives from the uploads: a recorded job of it (a redelivery, a capacity retry) has this stain.
        recorded = self._state.job(name)
        training_stain = (
            recorded.training_stain
            if recorded
            else stain.training_reference(stain_samples(self._blobs, train), train.x_stain_normalisation)
        )
        job = JobRecord(
            name=name,
            kind=JobKind.TUNING if tuning else JobKind.TRAINING,
            dataset=dataset,
            train_manifest=train_uri,
            valid_manifest=valid_uri,
            valid_images=self._blobs.uri(valid.image_prefix) if valid.image_prefix else None,
            train_count=train.x_count,
            valid_count=valid.x_count,
            experiment=bool(own_settings.get("experiment")),
            training_stain=training_stain,
        )
        if (
            not self._jobs.record(job)
            and present(self._state.job(name), f"job {name}").status is not JobStatus.STARTING
        ):
            return {"status": "already started", "job": name, "kind": job.kind}
        self._state.record_training_status(dataset, JobStatus.STARTING, latest_job=name)
        per_day = self._settings.limits.max_training_starts_per_day
        if not self._state.claim_training_start(dataset, datetime.now(UTC).date().isoformat(), name, per_day):
            reason = (
                f"the dataset has started {per_day} trainings today (UTC), this deployment's "
                "MaxTrainingStartsPerDay; drop its splits again tomorrow, or ask the operator to raise it"
            )
            self._jobs.fail(failed(job), self, reason)
            return {"status": "refused", "job": name, "reason": reason}
        try:
            inputs = TrainingInputs(
                name,
                train_uri,
                valid_uri,
                present(train.x_count, f"{dataset}/train's patch count"),
                train.image_edge,
                tags={"pcam:dataset": dataset, "pcam:inputs": identity}
                | ({"pcam:purpose": "experiment"} if job.experiment else {}),
            )
            if tuning:
                request = sagemaker_jobs.tuning_job_request(settings, inputs)
            else:
                request = sagemaker_jobs.training_job_request(settings, inputs)
        except (InvalidJobRequest, TrainingConfigError) as exc:
            # A deployment setting SageMaker cannot accept: retrying cannot help, operators must fix it.
            self._jobs.fail(failed(job), self, f"the job request is invalid: {exc}")
            return {"status": "failed", "job": name, "reason": str(exc)}
        try:
            started = self._jobs.start_once(job, request, hyperparameters=inputs.hyperparameters(settings))
        except QuotaIsZero as exc:  # no wait ends it: a failure that says how to raise the quota
            self._jobs.fail(failed(job), self, exc.how_to_raise())
            return {"status": "failed", "job": name, "reason": exc.how_to_raise()}
        except CapacityRefused as exc:  # a wait, not a failure: the scheduled tick starts it again
            self._state.wait_for_capacity(name, "training", dataset=dataset)
            return {"status": "waiting for SageMaker capacity", "job": name, "reason": str(exc)}
        return {"status": "started" if started else "already started", "job": name, "kind": job.kind}

    # ------------------------------------------------------------ job kind
    def on_progress(self, job: JobRecord, status: JobStatus) -> None:
        self._state.record_training_progress(dataset_of(job), job.name, status)

    def on_completed(self, job: JobRecord, detail: dict[str, Any], delivery: str) -> dict[str, Any]:
        if job.kind is JobKind.TUNING:
            best = self._launcher.best_training_job(job.name)
            return self.register_model(best, job, self._launcher.describe_training_job(best), tuning_job=job.name)
        description = detail if "ModelArtifacts" in detail else self._launcher.describe_training_job(job.name)
        return self.register_model(job.name, job, description)

    def on_failed(self, job: JobRecord, reason: str) -> None:
        self._state.record_training_failure(dataset_of(job), job.name, job.status, reason)
        self.announce_model_failure(job, reason)

    # ------------------------------------------------------------ the model
    def register_model(
        self, training_job: str, job: JobRecord, description: dict[str, Any], tuning_job: str | None = None
    ) -> dict[str, Any]:
        """Create the SageMaker Model of a finished training job, then evaluate it if a test split exists."""
        model_data = description["ModelArtifacts"]["S3ModelArtifacts"]
        dataset = dataset_of(job)
        request = inference_requests.model_request(self._settings, training_job, model_data, {"pcam:dataset": dataset})
        self._launcher.create_model(request)  # an existing model of this name is this model
        self._state.create_model(
            ModelRecord(
                model_name=training_job,
                dataset=dataset,
                training_job=training_job,
                tuning_job=tuning_job,
                model_data_uri=model_data,
                hyperparameters=description.get("HyperParameters", {}),
                train_manifest=job.train_manifest,
                valid_manifest=job.valid_manifest,
                valid_images=job.valid_images,
                train_count=job.train_count,
                experiment=job.experiment,
                training_stain=job.training_stain,
            )
        )
        self._state.record_latest_model(dataset, training_job)
        return {"model": training_job, **self._evaluation.start_test_transform(training_job)}


def dataset_of(job: JobRecord) -> str:
    """The dataset a training or tuning job trained on (recorded when it was started)."""
    return present(job.dataset, f"dataset of {job.name}")

"""Running a local SageMaker job to its end, as the job's role, and announcing each state on the bus.

- Training: ``local_trainer`` (same manifests and JPEGs, model.tar.gz under the job's output path).
- Tuning: trials named ``<tuning job>-NNN-<hash>`` as SageMaker names them (``local_tuning``).
- Transform: reads the S3Prefix or ManifestFile input, writes ``<name>.out`` (``local_transform``).
- Processing: the container's entrypoint run with this Python (``local_processing``).
"""

from __future__ import annotations

import json
import random
import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from pcam_local import REGION
from pcam_local.iam_calls import CallRecorder
from pcam_local.job_failures import LocalJobFailed
from pcam_local.local_processing import run_processing
from pcam_local.local_trainer import load_model, run_training_job
from pcam_local.local_transform import transform_inputs, write_predictions
from pcam_local.local_tuning import trial_request, tuning_outputs
from pcam_local.sagemaker_job import DETAIL_TYPES, Job, JobEnded
from pcam_training import algorithm_rules

if TYPE_CHECKING:
    from pcam_local.local_sagemaker import LocalSageMaker

# The built-in algorithm's documented rules, applied as the job starts (training/README.md).
# (Training jobs are checked by local_trainer, which tuning trials run through too.)
ALGORITHM_RULES: dict[str, Callable[[dict], list[str]]] = {
    "HyperParameterTuningJob": algorithm_rules.tuning_request_problems,
    "TransformJob": algorithm_rules.transform_request_problems,
}


class JobRunner:
    def __init__(self, sagemaker: LocalSageMaker, aws_endpoint: str, work_dir: Path, now: Callable[[], datetime]):
        self._sagemaker, self._aws_endpoint, self._work_dir, self._now = sagemaker, aws_endpoint, work_dir, now
        self._roles: dict[str, tuple[Any, CallRecorder]] = {}
        self._lock = threading.Lock()
        # State-change events come from SageMaker itself, not from the role: a session of their own.
        self._events = boto3.Session(
            region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local"
        ).client("events", endpoint_url=aws_endpoint)

    def _as_role(self, role: str) -> tuple[Any, CallRecorder]:
        """An S3 client acting as the role (its name) and the recorder of its calls; what a job reads and
        writes, SageMaker does with the job's role, so each role's calls are checked against its policies."""
        with self._lock:
            if role not in self._roles:
                session = boto3.Session(region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local")
                recorder = CallRecorder(role, self._work_dir / "calls" / f"sagemaker-{role}.jsonl")
                session.events.register_last("before-parameter-build", recorder)
                config = Config(max_pool_connections=48, retries={"mode": "standard", "max_attempts": 5})
                self._roles[role] = (session.client("s3", endpoint_url=self._aws_endpoint, config=config), recorder)
            return self._roles[role]

    def _role_of(self, job: Job) -> str:
        """The role name in the job's RoleArn; a transform job runs as its Model's ExecutionRoleArn."""
        request = job.request
        arn = request.get("RoleArn") or (request.get("TrainingJobDefinition") or {}).get("RoleArn")
        if job.kind == "TransformJob":
            arn = self._sagemaker.model(request["ModelName"]).get("ExecutionRoleArn")
        if not arn:
            raise JobEnded("Failed", "ClientError: the job names no role to run as")
        return arn.rsplit("/", 1)[-1]

    def run(self, job: Job) -> None:
        self._emit(job)
        try:
            job.s3, job.calls = self._as_role(self._role_of(job))
            self._record_logs_and_metrics(job)
            if job.kind in self._sagemaker.outcome_next:
                raise JobEnded(*self._sagemaker.outcome_next.pop(job.kind))
            refused = ALGORITHM_RULES.get(job.kind, lambda _: [])(job.request)
            if refused:  # SageMaker accepts the request, then the algorithm fails the job
                raise JobEnded("Failed", "ClientError: " + "; ".join(refused))
            {
                "TrainingJob": self._train,
                "HyperParameterTuningJob": self._tune,
                "TransformJob": self._transform,
                "ProcessingJob": lambda job: run_processing(job, self._work_dir),
            }[job.kind](job)
            job.status = "Completed"
        except JobEnded as exc:
            job.status, job.failure_reason = exc.status, exc.reason
        except LocalJobFailed as exc:
            job.status, job.failure_reason = "Failed", str(exc)
        except Exception as exc:
            job.status = "Failed"
            job.failure_reason = f"InternalServerError: {exc}"
            traceback.print_exc()
        job.ended = self._now()
        try:
            self._emit(job)
        finally:
            self._sagemaker.announced(job)

    def _record_logs_and_metrics(self, job: Job) -> None:
        """What SageMaker does with the execution role while a job runs (CreateTrainingJob API: execution role
        permissions): it writes its CloudWatch Logs stream and, for training, its metrics. Recorded for the IAM
        check. Not the image pull: SageMaker pulls its pre-built images with service-owned credentials
        (Developer Guide, "Docker Registry Paths and Example Code"), and every image here is one of them."""
        if job.kind == "HyperParameterTuningJob":
            return  # its trials log and report as training jobs
        group = f"/aws/sagemaker/{job.kind}s"
        stream = f"{job.name}/algo-1-{int(job.created.timestamp())}"
        job.calls.write("logs", "CreateLogGroup", {"logGroupName": group})
        for operation in ("CreateLogStream", "PutLogEvents"):
            job.calls.write("logs", operation, {"logGroupName": group, "logStreamName": stream})
        if job.kind == "TrainingJob":
            job.calls.write("cloudwatch", "PutMetricData", {"Namespace": "/aws/sagemaker/TrainingJobs"})

    def _emit(self, job: Job) -> None:
        detail_type = DETAIL_TYPES[job.kind]
        detail = json.loads(json.dumps(job.describe(), default=lambda v: v.isoformat()))
        entry = {"Source": "aws.sagemaker", "DetailType": detail_type, "Detail": json.dumps(detail)}
        self._events.put_events(Entries=[{**entry, "Resources": [job.arn]}])
        self._sagemaker.events_sent.append({"detail-type": detail_type, "detail": detail})

    def _train(self, job: Job) -> None:
        result = run_training_job(job.s3, job.request)
        job.outputs = {
            "ModelArtifacts": {"S3ModelArtifacts": result.model_uri},
            "FinalMetricDataList": [
                {"MetricName": "validation:accuracy", "Value": result.validation_accuracy, "Timestamp": job.created}
            ],
            "SecondaryStatus": "Completed",
        }

    def _tune(self, job: Job) -> None:
        config = job.request["HyperParameterTuningJobConfig"]
        rng = random.Random(job.name)
        trials = []
        for index in range(1, config["ResourceLimits"]["MaxNumberOfTrainingJobs"] + 1):
            name, request = trial_request(job, index, rng)
            trial = self._sagemaker.add_job(Job("TrainingJob", name, request, created=self._now()))
            self.run(trial)
            trials.append(trial)
        job.outputs = tuning_outputs(config, trials)

    def _transform(self, job: Job) -> None:
        sagemaker = self._sagemaker
        time.sleep(sagemaker.transform_startup_seconds)
        deadline = time.monotonic() + 60
        while (held := sagemaker.hold_transforms_until_refusals) is not None and sagemaker.quota_refusals < held:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        request = job.request
        model = load_model(job.s3, sagemaker.model(request["ModelName"])["PrimaryContainer"]["ModelDataUrl"])
        source = request["TransformInput"]["DataSource"]["S3DataSource"]
        base_names = sagemaker.manifest_output_names == "base name"
        inputs = transform_inputs(job.s3, source["S3DataType"], source["S3Uri"], base_names)
        lost, sagemaker.lose_outputs_next = sagemaker.lose_outputs_next, 0
        write_predictions(job.s3, model, inputs, request["TransformOutput"]["S3OutputPath"], lost)

"""Local stand-in for SageMaker: its JSON API on 127.0.0.1, jobs that really run, the same events.

The pipeline's functions reach it through ``AWS_ENDPOINT_URL_SAGEMAKER`` with plain boto3. Each
request is checked against botocore's SageMaker model (what AWS would reject fails here too); jobs run
in background threads and report "SageMaker … Job State Change" events (source aws.sagemaker) on the
local default event bus, where the template's rule picks them up.

- Training: ``local_trainer`` (same manifests and JPEGs, model.tar.gz under the job's output path).
- Tuning: trials named ``<tuning job>-NNN-<hash>`` as SageMaker names them, each a training job with
  sampled hyperparameters; the best by validation:accuracy is reported.
- Transform: reads the S3Prefix or ManifestFile input, writes ``<name>.out`` = {"prediction": [p0, p1]}.
- Processing: downloads the inputs, runs the container entrypoint with this Python (the local venv has
  what the scikit-learn image has), uploads the outputs.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import numpy as np
from botocore.config import Config
from PIL import Image

from pcam_local import REGION, TRANSFORM_QUOTA, iam_check
from pcam_local.job_failures import LocalJobFailed, ProcessingFailed, TransformFailed, TuningFailed
from pcam_local.local_trainer import load_model, run_training_job, split_s3_uri
from pcam_pipeline.aws import storage
from pcam_pipeline.core.errors import InvalidJobRequest
from pcam_pipeline.models.inference_requests import PROCESSING_ROOT
from pcam_pipeline.models.sagemaker_jobs import validate
from pcam_training import algorithm_rules

ACCOUNT = "123456789012"
# The built-in algorithm's documented rules, applied as the job starts (training/README.md).
# (Training jobs are checked by local_trainer, which tuning trials run through too.)
ALGORITHM_RULES = {
    "HyperParameterTuningJob": algorithm_rules.tuning_request_problems,
    "TransformJob": algorithm_rules.transform_request_problems,
}
PROCESSING_ENTRY_PYTHON = {"python3", "python"}
TRANSFORM_BATCH = 256


class JobEnded(Exception):
    """A job ending other than Completed, with SageMaker's status and reason."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class SageMakerError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class Job:
    kind: str  # TrainingJob, HyperParameterTuningJob, TransformJob, ProcessingJob
    name: str
    request: dict
    status: str = "InProgress"
    created: datetime = field(default_factory=lambda: datetime.now(UTC))  # the local stack's clock passes its own
    ended: datetime | None = None
    failure_reason: str = ""
    outputs: dict = field(default_factory=dict)
    s3: Any = None  # S3 as the job's role: what the job reads and writes is recorded for the IAM check
    calls: Any = None  # the role's call recorder (its logs and metrics)

    @property
    def arn(self) -> str:
        resource = {
            "TrainingJob": "training-job",
            "HyperParameterTuningJob": "hyper-parameter-tuning-job",
            "TransformJob": "transform-job",
            "ProcessingJob": "processing-job",
        }[self.kind]
        return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{resource}/{self.name}"

    def describe(self) -> dict:
        request = {k: v for k, v in self.request.items() if k != "Tags"}
        if self.kind == "HyperParameterTuningJob":
            status_field, name_field = "HyperParameterTuningJobStatus", "HyperParameterTuningJobName"
        else:
            status_field, name_field = f"{self.kind}Status", f"{self.kind}Name"
        description = {
            **request,
            name_field: self.name,
            f"{self.kind}Arn": self.arn,
            status_field: self.status,
            "CreationTime": self.created,
            "LastModifiedTime": self.ended or self.created,
            **self.outputs,
        }
        if self.failure_reason:
            description["FailureReason"] = self.failure_reason
        if self.ended:
            description[
                {"TrainingJob": "TrainingEndTime", "TransformJob": "TransformEndTime"}.get(self.kind, "EndTime")
            ] = self.ended
        return description


def _json_default(value):
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"cannot serialise {type(value)}")


class LocalSageMaker:
    def __init__(
        self,
        aws_endpoint: str,
        work_dir: Path,
        max_parallel_jobs: int = 2,
        transform_quota: int = TRANSFORM_QUOTA,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),  # the local stack's clock (LocalClock)
    ):
        self._aws_endpoint = aws_endpoint
        self._now = now
        self._roles: dict[str, tuple[Any, iam_check.CallRecorder]] = {}
        # State-change events come from SageMaker itself, not from the role: a session of their own.
        self._events = boto3.Session(
            region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local"
        ).client("events", endpoint_url=aws_endpoint)
        self._work_dir = Path(work_dir)
        self.transform_quota = transform_quota  # instances of one type across running transform jobs
        # Seconds each transform spends starting its instance before the first request (minutes on AWS;
        # 0 locally unless a test needs jobs to overlap, as a burst of them does on AWS).
        self.transform_startup_seconds = 0.0
        # While set, a starting transform waits (at most a minute) until SageMaker has refused this many starts
        # for quota in all: a test of the refusal then does not depend on how fast jobs finish.
        self.hold_transforms_until_refusals: int | None = None
        self._jobs: dict[tuple[str, str], Job] = {}
        self._models: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._unannounced = 0  # jobs started whose final event has not been sent
        self._runner = ThreadPoolExecutor(max_workers=max_parallel_jobs, thread_name_prefix="local-sagemaker")
        self.events_sent: list[dict] = []
        self.quota_refusals = 0
        self.peak_transform_instances = 0
        # job kind → (final status, reason): the next job of that kind ends so, to rehearse failures.
        self.outcome_next: dict[str, tuple[str, str]] = {}
        # The next transform completes but loses this many of its last outputs (a lost .out object).
        self.lose_outputs_next = 0
        # job kind → how many of its next Create… calls SageMaker refuses for capacity (ResourceLimitExceeded).
        self.refuse_next: dict[str, int] = {}
        # How a transform names the output of a ManifestFile entry "a/b/c.jpg": "relative path" (a/b/c.jpg.out)
        # or "base name" (c.jpg.out). SageMaker's docs do not say which; the pipeline must work with either.
        self.manifest_output_names = "relative path"

    def _as_role(self, role: str) -> tuple[Any, iam_check.CallRecorder]:
        """An S3 client acting as the role (its name) and the recorder of its calls; what a job reads and
        writes, SageMaker does with the job's role, so each role's calls are checked against its policies."""
        with self._lock:
            if role not in self._roles:
                session = boto3.Session(region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local")
                recorder = iam_check.CallRecorder(role, self._work_dir / "calls" / f"sagemaker-{role}.jsonl")
                session.events.register_last("before-parameter-build", recorder)
                config = Config(max_pool_connections=48, retries={"mode": "standard", "max_attempts": 5})
                self._roles[role] = (session.client("s3", endpoint_url=self._aws_endpoint, config=config), recorder)
            return self._roles[role]

    def _role_of(self, job: Job) -> str:
        """The role name in the job's RoleArn; a transform job runs as its Model's ExecutionRoleArn."""
        request = job.request
        arn = request.get("RoleArn") or (request.get("TrainingJobDefinition") or {}).get("RoleArn")
        if job.kind == "TransformJob":
            arn = self._models[request["ModelName"]].get("ExecutionRoleArn")
        if not arn:
            raise JobEnded("Failed", "ClientError: the job names no role to run as")
        return arn.rsplit("/", 1)[-1]

    # ------------------------------------------------------------------ server
    def start(self) -> LocalSageMaker:
        executor = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)) or 0)
                operation = self.headers.get("X-Amz-Target", "").removeprefix("SageMaker.")
                try:
                    status, payload = 200, executor.call(operation, json.loads(body or b"{}"))
                except SageMakerError as exc:
                    status, payload = 400, {"__type": exc.code, "message": exc.message}
                data = json.dumps(payload, default=_json_default).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._runner.shutdown(wait=True, cancel_futures=True)

    def busy(self) -> bool:
        """A job runs, or has ended but its last state-change event is not on the bus yet (a stack that
        looked idle in between would stop waiting before the pipeline heard of the job's end)."""
        with self._lock:
            return self._unannounced > 0

    # -------------------------------------------------------------- operations
    def call(self, operation: str, request: dict) -> dict:
        try:
            validate(operation, request)
        except InvalidJobRequest as exc:
            raise SageMakerError("ValidationException", str(exc)) from exc
        except Exception as exc:  # an operation botocore does not know
            raise SageMakerError("UnknownOperationException", f"{operation} is not a SageMaker operation") from exc
        if operation == "CreateModel":
            return self._create_model(request)
        if operation == "DescribeModel":
            return self._describe_model(request["ModelName"])
        for job_kind in ("TrainingJob", "HyperParameterTuningJob", "TransformJob", "ProcessingJob"):
            name_field = f"{job_kind}Name"
            if operation == f"Create{job_kind}":
                return self._create_job(job_kind, request[name_field], request)
            if operation == f"Describe{job_kind}":
                return self._job(job_kind, request[name_field]).describe()
        raise SageMakerError("UnknownOperationException", f"the local SageMaker does not implement {operation}")

    def _create_model(self, request: dict) -> dict:
        name = request["ModelName"]
        with self._lock:
            if name in self._models:
                raise SageMakerError(
                    "ValidationException", f'Cannot create already existing model "arn:aws:sagemaker:{name}".'
                )
            self._models[name] = {**request, "CreationTime": self._now()}
        return {"ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{name}"}

    def _describe_model(self, name: str) -> dict:
        with self._lock:
            if name not in self._models:
                raise SageMakerError("ValidationException", f'Could not find model "{name}".')
            return {k: v for k, v in self._models[name].items() if k != "Tags"}

    def _job(self, kind: str, name: str) -> Job:
        with self._lock:
            job = self._jobs.get((kind, name))
        if job is None:
            raise SageMakerError("ValidationException", f"Requested resource not found: {kind} {name}")
        return job

    def _create_job(self, kind: str, name: str, request: dict, run: bool = True) -> dict:
        if kind == "TransformJob" and request["ModelName"] not in self._models:
            raise SageMakerError("ValidationException", f'Could not find model "{request["ModelName"]}".')
        job = Job(kind, name, request, created=self._now())
        with self._lock:
            if (kind, name) in self._jobs:
                raise SageMakerError("ResourceInUse", f"{kind} names must be unique; {name} already exists")
            if self.refuse_next.get(kind, 0) > 0:
                self.refuse_next[kind] -= 1
                self.quota_refusals += 1
                raise SageMakerError(
                    "ResourceLimitExceeded",
                    f"The account-level service limit for {kind} usage is 0 Instances, with current utilization of "
                    "0 Instances and a request delta of 1 Instances. Please use AWS Service Quotas to request an "
                    "increase for this quota.",
                )
            if kind == "TransformJob":
                self._check_transform_quota(request["TransformResources"])
            self._jobs[(kind, name)] = job
        if run:
            with self._lock:
                self._unannounced += 1
            self._runner.submit(self._run, job)
        return {f"{kind}Arn": job.arn}

    def _check_transform_quota(self, resources: dict) -> None:
        """SageMaker's account-level quota "<instance type> for transform job usage": instances of that type
        across the account's running transform jobs. Over it, CreateTransformJob is refused with
        ResourceLimitExceeded (declared for the operation in botocore's model), in SageMaker's words."""
        instance_type, wanted = resources["InstanceType"], resources["InstanceCount"]
        in_use = sum(
            job.request["TransformResources"]["InstanceCount"]
            for job in self._jobs.values()
            if job.kind == "TransformJob"
            and job.status == "InProgress"
            and job.request["TransformResources"]["InstanceType"] == instance_type
        )
        if in_use + wanted > self.transform_quota:
            self.quota_refusals += 1
            raise SageMakerError(
                "ResourceLimitExceeded",
                f"The account-level service limit '{instance_type} for transform job usage' is "
                f"{self.transform_quota} Instances, with current utilization of {in_use} Instances and a request "
                f"delta of {wanted} Instances. Please use AWS Service Quotas to request an increase for this quota.",
            )
        self.peak_transform_instances = max(self.peak_transform_instances, in_use + wanted)

    # ------------------------------------------------------------------- jobs
    def _run(self, job: Job) -> None:
        self._emit(job)
        try:
            job.s3, job.calls = self._as_role(self._role_of(job))
            self._record_logs_and_metrics(job)
            if job.kind in self.outcome_next:
                raise JobEnded(*self.outcome_next.pop(job.kind))
            refused = ALGORITHM_RULES.get(job.kind, lambda _: [])(job.request)
            if refused:  # SageMaker accepts the request, then the algorithm fails the job
                raise JobEnded("Failed", "ClientError: " + "; ".join(refused))
            {
                "TrainingJob": self._train,
                "HyperParameterTuningJob": self._tune,
                "TransformJob": self._transform,
                "ProcessingJob": self._process,
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
            with self._lock:
                self._unannounced -= 1

    def _image_of(self, job: Job) -> str:
        request = job.request
        if job.kind == "TransformJob":
            return self._models[request["ModelName"]]["PrimaryContainer"]["Image"]
        if job.kind == "ProcessingJob":
            return request["AppSpecification"]["ImageUri"]
        return request["AlgorithmSpecification"]["TrainingImage"]

    def _record_logs_and_metrics(self, job: Job) -> None:
        """What SageMaker does with the execution role while a job runs (CreateTrainingJob API: execution role
        permissions): it pulls the job's image from ECR, writes its CloudWatch Logs stream and, for training,
        its metrics. Recorded for the IAM check."""
        if job.kind == "HyperParameterTuningJob":
            return  # its trials pull, log and report as training jobs
        registry, _, path = self._image_of(job).partition(".dkr.ecr.")
        repository = path.split("/", 1)[1].split(":", 1)[0]
        job.calls.write("ecr", "GetAuthorizationToken", {})
        for operation in ("BatchCheckLayerAvailability", "BatchGetImage", "GetDownloadUrlForLayer"):
            job.calls.write("ecr", operation, {"registryId": registry, "repositoryName": repository})
        group = f"/aws/sagemaker/{job.kind}s"
        stream = f"{job.name}/algo-1-{int(job.created.timestamp())}"
        job.calls.write("logs", "CreateLogGroup", {"logGroupName": group})
        for operation in ("CreateLogStream", "PutLogEvents"):
            job.calls.write("logs", operation, {"logGroupName": group, "logStreamName": stream})
        if job.kind == "TrainingJob":
            job.calls.write("cloudwatch", "PutMetricData", {"Namespace": "/aws/sagemaker/TrainingJobs"})

    def _emit(self, job: Job) -> None:
        detail_type = {
            "TrainingJob": "SageMaker Training Job State Change",
            "HyperParameterTuningJob": "SageMaker HyperParameter Tuning Job State Change",
            "TransformJob": "SageMaker Transform Job State Change",
            "ProcessingJob": "SageMaker Processing Job State Change",
        }[job.kind]
        detail = json.loads(json.dumps(job.describe(), default=lambda v: v.isoformat()))
        entry = {"Source": "aws.sagemaker", "DetailType": detail_type, "Detail": json.dumps(detail)}
        self._events.put_events(Entries=[{**entry, "Resources": [job.arn]}])
        self.events_sent.append({"detail-type": detail_type, "detail": detail})

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
        definition = job.request["TrainingJobDefinition"]
        rng = random.Random(job.name)
        trials = []
        for index in range(1, config["ResourceLimits"]["MaxNumberOfTrainingJobs"] + 1):
            sampled = _sample(config.get("ParameterRanges", {}), rng)
            name = f"{job.name}-{index:03d}-{rng.getrandbits(32):08x}"
            request = {
                "TrainingJobName": name,
                "HyperParameters": {**definition.get("StaticHyperParameters", {}), **sampled},
                **{k: v for k, v in definition.items() if k != "StaticHyperParameters"},
                "AlgorithmSpecification": definition["AlgorithmSpecification"],
            }
            trial = Job("TrainingJob", name, request, created=self._now())
            with self._lock:
                self._jobs[("TrainingJob", name)] = trial
                self._unannounced += 1
            self._run(trial)
            if trial.status == "Completed":
                accuracy = trial.outputs["FinalMetricDataList"][0]["Value"]
                trials.append((accuracy, index, trial))
        if not trials:
            raise TuningFailed("All training jobs failed")
        accuracy, _, best = max(trials, key=lambda t: (t[0], -t[1]))
        job.outputs = {
            "BestTrainingJob": {
                "TrainingJobName": best.name,
                "TrainingJobArn": best.arn,
                "CreationTime": best.created,
                "TrainingJobStatus": "Completed",
                "TunedHyperParameters": {k: best.request["HyperParameters"][k] for k in _tuned_names(config)},
                "FinalHyperParameterTuningJobObjectiveMetric": {
                    "MetricName": config["HyperParameterTuningJobObjective"]["MetricName"],
                    "Value": accuracy,
                },
            },
            "TrainingJobStatusCounters": {"Completed": len(trials)},
        }

    def _transform(self, job: Job) -> None:
        time.sleep(self.transform_startup_seconds)
        deadline = time.monotonic() + 60
        while (held := self.hold_transforms_until_refusals) is not None and self.quota_refusals < held:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        request = job.request
        model = load_model(job.s3, self._models[request["ModelName"]]["PrimaryContainer"]["ModelDataUrl"])
        source = request["TransformInput"]["DataSource"]["S3DataSource"]
        inputs = self._transform_inputs(job.s3, source["S3DataType"], source["S3Uri"])
        out_bucket, out_prefix = split_s3_uri(request["TransformOutput"]["S3OutputPath"])
        out_prefix = out_prefix.rstrip("/") + "/" if out_prefix else ""
        lost, self.lose_outputs_next = self.lose_outputs_next, 0
        inputs_kept = len(inputs) - lost
        with ThreadPoolExecutor(max_workers=16) as readers, storage.ConcurrentUploader(job.s3, out_bucket) as writer:
            for start in range(0, len(inputs), TRANSFORM_BATCH):
                batch = inputs[start : start + TRANSFORM_BATCH]
                images = list(readers.map(lambda item: self._read_image(job.s3, *item[:2]), batch))
                probabilities = model.predict_proba(np.stack(images))
                for position, ((_, _, relative), p) in enumerate(zip(batch, probabilities, strict=True), start):
                    if position >= inputs_kept:
                        continue
                    body = json.dumps({"prediction": [float(p[0]), float(p[1])]})
                    writer.put(f"{out_prefix}{relative}.out", body.encode(), "application/json")

    def _transform_inputs(self, s3, data_type: str, uri: str) -> list[tuple[str, str, str]]:
        """(bucket, key, output name relative to the input prefix) of every input object, in order."""
        bucket, key = split_s3_uri(uri)
        if data_type == "ManifestFile":
            entries = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            prefix_bucket, prefix = split_s3_uri(entries[0]["prefix"])
            base_names = self.manifest_output_names == "base name"
            return [
                (prefix_bucket, prefix + name, name.rsplit("/", 1)[-1] if base_names else name) for name in entries[1:]
            ]
        found = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            found.extend(obj["Key"] for obj in page.get("Contents", []))
        base = key[: key.rfind("/") + 1]
        return [(bucket, k, k[len(base) :]) for k in sorted(found)]

    def _read_image(self, s3, bucket: str, key: str) -> np.ndarray:
        try:
            data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        except Exception as exc:
            raise TransformFailed(f"ClientError: s3://{bucket}/{key} could not be read as an image: {exc}") from exc

    def _process(self, job: Job) -> None:
        request = job.request
        root = Path(tempfile.mkdtemp(prefix=f"{job.name}-", dir=self._work_dir))

        def local(path: str) -> str:
            return str(root) + path[len(PROCESSING_ROOT) :] if path.startswith(PROCESSING_ROOT) else path

        try:
            for item in request.get("ProcessingInputs", []):
                self._download(job.s3, item["S3Input"]["S3Uri"], Path(local(item["S3Input"]["LocalPath"])))
            outputs = request.get("ProcessingOutputConfig", {}).get("Outputs", [])
            for item in outputs:
                Path(local(item["S3Output"]["LocalPath"])).mkdir(parents=True, exist_ok=True)
            spec = request["AppSpecification"]
            command = [
                local(part) for part in [*spec.get("ContainerEntrypoint", []), *spec.get("ContainerArguments", [])]
            ]
            if command and command[0] in PROCESSING_ENTRY_PYTHON:
                command[0] = sys.executable
            timeout = request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400)
            if request.get("NetworkConfig", {}).get("EnableNetworkIsolation"):
                command = without_network(command)
            completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
            if completed.returncode != 0:
                last = (completed.stderr.strip().splitlines() or ["no output"])[-1]
                raise ProcessingFailed(f"AlgorithmError: {last}, exit code: {completed.returncode}")
            for item in outputs:
                self._upload(job.s3, Path(local(item["S3Output"]["LocalPath"])), item["S3Output"]["S3Uri"])
            job.outputs = {"ExitMessage": completed.stdout.strip()[-1024:]}
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def _download(self, s3, uri: str, target: Path) -> None:
        bucket, prefix = split_s3_uri(uri)
        base = prefix[: prefix.rfind("/") + 1]
        keys = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        if not keys:
            raise ProcessingFailed(f"ClientError: no objects found under {uri}")

        def fetch(key: str) -> None:
            path = target / key[len(base) :]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(fetch, keys))

    def _upload(self, s3, directory: Path, uri: str) -> None:
        bucket, prefix = split_s3_uri(uri)
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            s3.put_object(Bucket=bucket, Key=prefix + path.relative_to(directory).as_posix(), Body=path.read_bytes())


# Run a Python entrypoint with every socket refused, as SageMaker runs a container in network isolation
# (NetworkConfig.EnableNetworkIsolation: "no inbound or outbound network calls").
_NO_NETWORK = """
import runpy, socket, sys
def refused(*args, **kwargs):
    raise OSError("network isolation: this job's container has no network")
socket.socket.connect = socket.socket.connect_ex = refused
socket.create_connection = socket.getaddrinfo = refused
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def without_network(command: list[str]) -> list[str]:
    """``[python, script, *args]`` run with no network; any other command cannot be isolated here."""
    if len(command) < 2 or command[0] != sys.executable:
        raise ProcessingFailed("ClientError: the local SageMaker isolates only Python entrypoints from the network")
    return [sys.executable, "-c", _NO_NETWORK, *command[1:]]


def _tuned_names(config: dict) -> list[str]:
    return [r["Name"] for ranges in config.get("ParameterRanges", {}).values() for r in ranges]


def _sample(ranges: dict, rng: random.Random) -> dict[str, str]:
    """One trial's hyperparameters, drawn from the tuning job's ranges (random search stands in for Bayesian)."""
    sampled = {}
    for spec in ranges.get("ContinuousParameterRanges", []):
        low, high = float(spec["MinValue"]), float(spec["MaxValue"])
        if spec.get("ScalingType") == "Logarithmic":
            value = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        else:
            value = rng.uniform(low, high)
        sampled[spec["Name"]] = f"{value:.6g}"
    for spec in ranges.get("IntegerParameterRanges", []):
        sampled[spec["Name"]] = str(rng.randint(int(spec["MinValue"]), int(spec["MaxValue"])))
    for spec in ranges.get("CategoricalParameterRanges", []):
        sampled[spec["Name"]] = rng.choice(spec["Values"])
    return sampled

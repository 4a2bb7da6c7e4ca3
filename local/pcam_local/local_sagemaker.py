"""Local stand-in for SageMaker: its JSON API on 127.0.0.1, jobs that really run, the same events.

The pipeline's functions reach it through ``AWS_ENDPOINT_URL_SAGEMAKER`` with plain boto3. Each
request is checked against botocore's SageMaker model (what AWS would reject fails here too); jobs run
in background threads (``local_job_runner``) and report "SageMaker … Job State Change" events (source
aws.sagemaker) on the local default event bus, where the template's rule picks them up. This class holds what
SageMaker's API answers: models, jobs, the transform quota, and the failures a test asks it to rehearse.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from pcam_local import REGION, TRANSFORM_QUOTA
from pcam_local.local_job_runner import JobRunner
from pcam_local.sagemaker_job import ACCOUNT, Job, SageMakerError, quota_refused, serve
from pcam_pipeline.core.errors import InvalidJobRequest
from pcam_pipeline.models.sagemaker_jobs import validate


class LocalSageMaker:
    def __init__(
        self,
        aws_endpoint: str,
        work_dir: Path,
        max_parallel_jobs: int = 2,
        transform_quota: int = TRANSFORM_QUOTA,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),  # the local stack's clock (LocalClock)
    ):
        self._now = now
        self._jobs_runner = JobRunner(self, aws_endpoint, Path(work_dir), now)
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

    # ------------------------------------------------------------------ server
    def start(self) -> LocalSageMaker:
        self._server = serve(self.call)
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

    def _create_job(self, kind: str, name: str, request: dict) -> dict:
        if kind == "TransformJob" and request["ModelName"] not in self._models:
            raise SageMakerError("ValidationException", f'Could not find model "{request["ModelName"]}".')
        job = Job(kind, name, request, created=self._now())
        with self._lock:
            if (kind, name) in self._jobs:
                raise SageMakerError("ResourceInUse", f"{kind} names must be unique; {name} already exists")
            if self.refuse_next.get(kind, 0) > 0:
                self.refuse_next[kind] -= 1
                self.quota_refusals += 1
                raise quota_refused(f"for {kind} usage", 0, 0, 1)
            if kind == "TransformJob":
                self._check_transform_quota(request["TransformResources"])
            self._jobs[(kind, name)] = job
            self._unannounced += 1
        self._runner.submit(self._jobs_runner.run, job)
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
            raise quota_refused(f"'{instance_type} for transform job usage'", self.transform_quota, in_use, wanted)
        self.peak_transform_instances = max(self.peak_transform_instances, in_use + wanted)

    # ------------------------------------------------------- for the job runner
    def model(self, name: str) -> dict:
        return self._models[name]

    def add_job(self, job: Job) -> Job:
        """A job SageMaker starts itself (a tuning job's trial); announced by the runner like any other."""
        with self._lock:
            self._jobs[(job.kind, job.name)] = job
            self._unannounced += 1
        return job

    def announced(self, job: Job) -> None:
        """The job's final state-change event is on the bus."""
        with self._lock:
            self._unannounced -= 1

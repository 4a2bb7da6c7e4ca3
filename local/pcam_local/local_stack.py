"""The whole local stack as one object: start it, drop files, wait, collect results, stop it."""

from __future__ import annotations

import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.config import Config

from pcam_local import REGION, TRANSFORM_QUOTA, iam_check
from pcam_local.clock import LocalClock
from pcam_local.lifecycle import LifecycleAction
from pcam_local.local_sagemaker import LocalSageMaker
from pcam_local.moto_server import MotoServer, client_environment
from pcam_local.runtime import LocalRuntime
from pcam_local.schedules import ScheduledRules
from pcam_local.stack import DeployedStack, deploy
from pcam_local.template import project_root
from pcam_pipeline.state import StateStore

RESULT_PREFIXES = ("manifests/", "quarantine/", "evaluations/", "predictions/")
# Each function runs as many workers as its deployed event source mapping allows (the template's
# *MaxConcurrency parameters). Locally the conversion default is two, one per core: it is CPU-bound, and
# the template's 50 would only make 50 processes wait for two cores.
# Slides share a scoring job when they are ready within 5 s locally (60 s deployed): the local minute is
# compressed, as the scheduled rules' (every 3 s).
LOCAL_PARAMETER_DEFAULTS = {"ConvertMaxConcurrency": "2", "ScoringBatchWindowSeconds": "5"}


@dataclass
class LocalStack:
    port: int | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    work_dir: Path | None = None
    concurrency: dict[str, int] = field(default_factory=dict)  # overrides per function, e.g. 0 to switch off
    transform_job_quota: int = TRANSFORM_QUOTA  # the local SageMaker's quota of transform instances
    tick_seconds: float = 3.0  # how often scheduled rules fire (a compressed minute)
    account_concurrency: int | None = None  # the account's Lambda concurrency to simulate (None: unlimited)

    def start(self) -> LocalStack:
        self.work_dir = Path(self.work_dir or tempfile.mkdtemp(prefix="pcam-local-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.server = MotoServer(
            self.port, log_path=self.work_dir / "moto.log", account_concurrency=self.account_concurrency
        ).start()
        self.endpoint = self.server.url
        self._session = boto3.Session(region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local")
        try:
            parameters = {**LOCAL_PARAMETER_DEFAULTS, **self.parameters}
            self.deployed: DeployedStack = deploy(project_root(), self.endpoint, parameters)
            self.clock = LocalClock(self.endpoint)
            self.sagemaker = LocalSageMaker(
                self.endpoint, self.work_dir, transform_quota=self.transform_job_quota, now=self.clock.now
            ).start()
            dynamodb = self._session.resource("dynamodb", endpoint_url=self.endpoint)
            self.state = StateStore(self.deployed.outputs["StateTableName"], dynamodb)
            self.runtime = LocalRuntime(
                self.deployed,
                self.endpoint,
                self.work_dir / "logs",
                concurrency=self.concurrency,
                extra_environment={"AWS_ENDPOINT_URL_SAGEMAKER": self.sagemaker.url},
                also_busy=self._jobs_pending,
                clock_offset=self.clock.offset_seconds,
                account_concurrency=self.account_concurrency,
            ).start()
            self.schedules = ScheduledRules(self.deployed, self.endpoint, self.tick_seconds, self.clock.now).start()
        except BaseException:
            if getattr(self, "runtime", None):
                self.runtime.stop()
            if getattr(self, "sagemaker", None):
                self.sagemaker.stop()
            self.server.stop()
            raise
        config = Config(max_pool_connections=32, retries={"mode": "standard", "max_attempts": 5})
        self.s3 = self._session.client("s3", endpoint_url=self.endpoint, config=config)
        self.sqs = self._session.client("sqs", endpoint_url=self.endpoint)
        self._seen_events: list[dict] = []
        return self

    def _jobs_pending(self) -> bool:
        """Work that will send events: a local SageMaker job, slides queued for a transform job, or a job
        SageMaker refused for capacity, which the scheduled tick starts again."""
        return self.sagemaker.busy() or bool(self.state.queued_slides()) or bool(self.state.capacity_waits())

    def stop(self) -> None:
        try:
            self.schedules.stop()
            self.runtime.stop()
            self.sagemaker.stop()
        finally:
            self.server.stop()

    def iam_report(self) -> list[dict]:
        """Every call each role made so far, checked against its policies; written to iam-report.json."""
        return iam_check.write_report(self.deployed, self.work_dir)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def bucket(self) -> str:
        return self.deployed.bucket

    def environment(self) -> dict[str, str]:
        """Variables that point the aws CLI or boto3 at this stack."""
        return {**client_environment(self.endpoint), "AWS_ENDPOINT_URL_SAGEMAKER": self.sagemaker.url}

    # ------------------------------------------------------------------ input
    def drop(self, local_path: Path, key: str) -> None:
        self.s3.upload_file(str(local_path), self.bucket, key)

    def drop_directory(self, directory: Path) -> list[str]:
        """Upload every file under ``directory`` to ``incoming/<relative path>``; hidden files (``.DS_Store``, the
        demo's own marker) are not a lab's data."""
        files = sorted(p for p in Path(directory).rglob("*") if p.is_file() and not p.name.startswith("."))
        keys = ["incoming/" + p.relative_to(directory).as_posix() for p in files]
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(self.drop, files, keys))
        return keys

    def wait_until_idle(self, timeout: float = 900) -> bool:
        return self.runtime.wait_until_idle(timeout)

    def advance_days(self, days: float) -> list[LifecycleAction]:
        """Let ``days`` pass: the bucket's lifecycle rules act as S3's would have; the clock moves on."""
        return self.clock.advance(days, self.s3, [self.bucket])

    # ------------------------------------------------------------------ output
    def list_keys(self, prefix: str) -> list[str]:
        keys = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return keys

    def read(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def download_results(self, out_dir: Path, prefixes=RESULT_PREFIXES) -> list[Path]:
        written = []
        for prefix in prefixes:
            for key in self.list_keys(prefix):
                if key.startswith("evaluations/") and "/predictions/" in key:
                    continue  # raw test-set transform outputs: metrics.json summarises them
                target = Path(out_dir) / key
                target.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(self.bucket, key, str(target))
                written.append(target)
        return written

    def pipeline_events(self) -> list[dict]:
        """Every event announced on the pipeline bus so far (read from the local tap queue)."""
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.deployed.events_tap_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return list(self._seen_events)
            for message in messages:
                self._seen_events.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.deployed.events_tap_url, ReceiptHandle=message["ReceiptHandle"])

    def dead_letters(self) -> dict[str, list[dict]]:
        """Messages waiting in each dead-letter queue (left in place for a later redrive)."""
        found = {}
        for logical_id, url in self.deployed.dead_letter_queues.items():
            messages = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0
            ).get("Messages", [])
            found[logical_id] = [json.loads(m["Body"]) for m in messages]
        return found

    def records(self) -> list[dict]:
        return self.state.scan_all()

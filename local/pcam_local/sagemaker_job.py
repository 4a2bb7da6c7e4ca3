"""A local SageMaker job as SageMaker describes it, the errors its API answers, and the JSON API served over HTTP
on 127.0.0.1 (``serve``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pcam_local import REGION

ACCOUNT = "123456789012"
# What SageMaker puts on the default bus as a job changes state (the template's rule matches these).
DETAIL_TYPES = {
    "TrainingJob": "SageMaker Training Job State Change",
    "HyperParameterTuningJob": "SageMaker HyperParameter Tuning Job State Change",
    "TransformJob": "SageMaker Transform Job State Change",
    "ProcessingJob": "SageMaker Processing Job State Change",
}


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


def json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"cannot serialise {type(value)}")


def quota_refused(limit: str, quota: int, in_use: int, wanted: int) -> SageMakerError:
    """SageMaker's refusal of a job start over an account-level quota, in its words."""
    return SageMakerError(
        "ResourceLimitExceeded",
        f"The account-level service limit {limit} is {quota} Instances, with current utilization of {in_use} "
        f"Instances and a request delta of {wanted} Instances. Please use AWS Service Quotas to request an increase "
        "for this quota.",
    )


def serve(call: Callable[[str, dict], dict]) -> ThreadingHTTPServer:
    """SageMaker's JSON 1.1 protocol on a free port of 127.0.0.1: ``X-Amz-Target: SageMaker.<operation>``."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)) or 0)
            operation = self.headers.get("X-Amz-Target", "").removeprefix("SageMaker.")
            try:
                status, payload = 200, call(operation, json.loads(body or b"{}"))
            except SageMakerError as exc:
                status, payload = 400, {"__type": exc.code, "message": exc.message}
            data = json.dumps(payload, default=json_default).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server

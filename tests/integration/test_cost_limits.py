"""A lab cannot make the deployment spend past the operator's limits: its training.json is quarantined, and
the role that starts SageMaker jobs would be denied the request anyway (the offline IAM check)."""

import json

import pytest

from pcam_local import iam_check
from pcam_pipeline.core.cost_limits import CostLimits
from pcam_pipeline.core.dropped_files import DroppedFile
from pcam_pipeline.models import inference_requests, sagemaker_jobs
from pcam_pipeline.models.sagemaker_jobs import SageMakerSettings, TrainingInputs
from pcam_pipeline.models.slide_staging import staging_request
from pcam_pipeline.wsi.staging_jobs import StagingWanted
from pcam_pipeline.wsi.structure import SlideLimits
from tests.integration.conftest import INTEGRATION

pytestmark = INTEGRATION
ROLE = "SageMakerFlowFunctionRole"
NO_LIMITS = CostLimits(
    ("ml.p5.48xlarge", "ml.p3.2xlarge"), ("ml.p3.16xlarge", "ml.m5.xlarge"), ("ml.m5.large", "ml.m5.xlarge"), 100
)


def test_a_training_json_asking_for_100_p5_instances_is_quarantined_with_the_limit_it_breaks(pipeline):
    key = "incoming/datasets/spendthrift/training.json"
    body = json.dumps({"instance_type": "ml.p5.48xlarge", "instance_count": 100}).encode()
    pipeline.drop(key, body)
    pipeline.settle()
    error = pipeline.json(f"quarantine/{key}.error.json")
    assert "AllowedTrainingInstanceTypes" in error["problem"] and error["found"] == "ml.p5.48xlarge"
    assert "ml.p3.2xlarge" in error["expected"]
    assert pipeline.stack.read(f"quarantine/{key}") == body
    assert pipeline.file_record(key)["status"] == "quarantined"


def denied(stack, operation: str, request: dict) -> list[str]:
    """What the offline IAM check says the SageMaker flow's role would be denied for this call."""
    deployed = stack.deployed
    call = {"role": ROLE, "service": "sagemaker", "operation": operation, "params": request}
    (report,) = iam_check.check(deployed.template, deployed.physical_ids, deployed.parameters, [call])
    return report.denied


def settings(stack, **fields) -> SageMakerSettings:
    role = "arn:aws:iam::123456789012:role/sm"  # PassRole is not what these tests are about
    return SageMakerSettings(role_arn=role, region="us-east-1", bucket=stack.bucket, limits=NO_LIMITS, **fields)


def staging(stack, **fields) -> dict:
    """A slide staging job's request (a 20 GiB slide)."""
    upload = DroppedFile(stack.bucket, "incoming/slides/big.ndpi", "v1", "e1")
    wanted = StagingWanted.of(upload, "big", 20 << 30, None, 0.972, SlideLimits())
    return staging_request(settings(stack, **fields), wanted, "s3://b/code/x/", f"s3://{stack.bucket}/")


def training(stack, **fields) -> dict:
    inputs = TrainingInputs("pcam-spend-train-0", "s3://b/t.manifest", "s3://b/v.manifest", 10, 96)
    return sagemaker_jobs.training_job_request(settings(stack, **fields), inputs)


@pytest.mark.parametrize(
    ("operation", "build", "allowed"),
    [
        ("CreateTrainingJob", lambda stack: training(stack, instance_type="ml.p5.48xlarge", instance_count=100), False),
        ("CreateTrainingJob", lambda stack: training(stack, max_runtime_seconds=28 * 24 * 3600), False),
        ("CreateTrainingJob", lambda stack: training(stack, instance_type="ml.p3.2xlarge"), True),
        (
            "CreateTransformJob",
            lambda stack: inference_requests.transform_request(
                settings(stack, transform_instance_type="ml.p3.16xlarge"), "pcam-t", "m", "s3://b/i", "s3://b/o", {}
            ),
            False,
        ),
        (
            "CreateTransformJob",
            lambda stack: inference_requests.transform_request(
                settings(stack), "pcam-t", "m", "s3://b/i", "s3://b/o", {}
            ),
            True,
        ),
        ("CreateProcessingJob", lambda stack: staging(stack, staging_max_runtime_seconds=5 * 24 * 3600), False),
        ("CreateProcessingJob", lambda stack: staging(stack), True),
    ],
    ids=[
        "100-p5",
        "28-days",
        "allowed-training",
        "p3-transform",
        "allowed-transform",
        "5-day-staging",
        "allowed-staging",
    ],
)
def test_the_role_would_be_denied_any_request_beyond_the_limits_even_if_the_pipelines_checks_failed(
    stack, operation, build, allowed
):
    refused = [line for line in denied(stack, operation, build(stack)) if line.startswith(f"sagemaker:{operation}")]
    assert (refused == []) is allowed, refused

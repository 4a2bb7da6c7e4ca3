"""Through the local stack, with every function's client as strict as AWS: names with spaces,
parentheses, commas, ampersands, apostrophes, #, non-ASCII letters and 200 characters go end to end,
while requests AWS would refuse fail here too."""

import csv
import io
import time

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError

from pcam_pipeline.aws import request_rules
from pcam_synth.synth import synth_slide, synth_split
from tests.integration.conftest import INTEGRATION, stack_of_its_own
from tests.lab import h5_bytes

pytestmark = [*INTEGRATION, pytest.mark.scenario]  # the later checks look at what the end-to-end run made

DATASET = ("Lab (A), B&C #1 o'Brien Übersicht " + "d" * 200)[:200]
SLIDE = ("Slide (7), B&C #2 o'Brien Gewebe ümlaut " + "s" * 200)[:200]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with stack_of_its_own(tmp_path_factory, "fidelity", PromotionMinimumAuc="0.5") as running:
        yield running


def test_awkward_dataset_and_slide_names_go_end_to_end(stack, pipeline):
    rng = np.random.default_rng(3)
    for split, count in (("train", 300), ("valid", 100), ("test", 160)):
        pipeline.drop_split(DATASET, split, *synth_split(count, rng))
    pipeline.settle()
    patches, coords, _ = synth_slide(3, 4, rng)
    pipeline.drop(f"incoming/slides/{SLIDE}.h5", h5_bytes(x=patches, coords=coords))
    pipeline.settle()

    assert stack.dead_letters() == {name: [] for name in stack.dead_letters()}
    jobs = [r for r in stack.records() if r["pk"].startswith("job#")]
    assert {j["status"] for j in jobs} == {"Completed"} and len(jobs) == 5  # train, test, valid, metrics, score
    assert {j.get("dataset") or j["slide_id"] for j in jobs} == {DATASET, SLIDE}  # full names in the state
    for job in stack.sagemaker._jobs.values():  # what SageMaker was sent carries valid tags
        for tag in job.request.get("Tags", []):
            assert request_rules.violations("sagemaker", "AddTags", {"ResourceArn": job.arn, "Tags": [tag]}) == []
    rows = list(csv.reader(io.StringIO(stack.read(f"predictions/{SLIDE}.csv").decode())))
    assert len(rows) == 13 and {row[0] for row in rows[1:]} == {SLIDE}
    (scored,) = pipeline.events_for("Slide Scored", slide_id=SLIDE)
    assert scored["detail"]["model_metrics"]["auc"] > 0.5
    assert pipeline.events_for("Model Evaluated", dataset=DATASET)


def test_the_local_sagemaker_refuses_a_tag_value_sagemaker_refuses(stack):
    sagemaker = stack._session.client("sagemaker", endpoint_url=stack.sagemaker.url)
    model = next(iter(stack.sagemaker._models.values()))
    request = {k: v for k, v in model.items() if k in ("ModelName", "PrimaryContainer", "ExecutionRoleArn")}
    with pytest.raises(ClientError) as refused:
        sagemaker.create_model(**{**request, "ModelName": "pcam-pipes", "Tags": [{"Key": "k", "Value": "a|b"}]})
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "does not match the pattern" in refused.value.response["Error"]["Message"]


def test_resnet_20_at_96_px_fails_the_job_as_sagemaker_would(stack):
    sagemaker = stack._session.client("sagemaker", endpoint_url=stack.sagemaker.url)
    (trained,) = [job for job in stack.sagemaker._jobs.values() if job.kind == "TrainingJob"]
    request = {k: v for k, v in trained.request.items() if k != "TrainingJobName"}
    from_scratch = {k: v for k, v in request["HyperParameters"].items() if k != "resize"}
    request["HyperParameters"] = {
        **from_scratch,
        "num_layers": "20",
        "use_pretrained_model": "0",
        "image_shape": "3,96,96",
    }
    sagemaker.create_training_job(TrainingJobName="pcam-resnet-20-at-96", **request)
    started = time.monotonic()
    while time.monotonic() - started < 60:
        described = sagemaker.describe_training_job(TrainingJobName="pcam-resnet-20-at-96")
        if described["TrainingJobStatus"] != "InProgress":
            break
        time.sleep(0.5)
    assert described["TrainingJobStatus"] == "Failed"
    assert described["FailureReason"].startswith("ClientError: num_layers 20 does not exist for 96x96 images")


def test_a_function_client_refuses_an_alert_subject_sns_refuses(stack):
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local")
    request_rules.install(session)
    sns = session.client("sns", endpoint_url=stack.endpoint)
    with pytest.raises(ClientError) as refused:
        sns.publish(TopicArn=stack.deployed.outputs["AlertTopicArn"], Subject="x" * 100, Message="m")
    assert refused.value.response["Error"]["Code"] == "InvalidParameter"


def test_every_call_each_role_made_is_allowed_by_its_policies(stack):
    """The IAM sufficiency report (also written to iam-report.json): all six roles made calls, none denied; each
    SageMaker job's role used every statement it has (nothing it should have dropped)."""
    reports = {report["role"]: report for report in stack.iam_report()}
    jobs = ["SageMakerEvaluationRole", "SageMakerTrainingRole", "SageMakerTransformRole"]
    assert sorted(reports) == sorted(
        ["ConvertShardFunctionRole", "IngestFunctionRole", "SageMakerFlowFunctionRole", *jobs]
    )
    for report in reports.values():
        assert report["calls"] > 0 and report["statements_used"] and report["denied"] == []
    for role in jobs:
        assert reports[role]["statements_never_used"] == [], (role, reports[role]["statements_never_used"])

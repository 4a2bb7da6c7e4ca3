"""How the model lifecycle reacts to each SageMaker job status (in-process moto for state, bus and topic)."""

import json
from pathlib import Path

import boto3
import pytest

from pcam_pipeline.alerts import Alerter
from pcam_pipeline.model_lifecycle import ModelLifecycle
from pcam_pipeline.sagemaker_jobs import SageMakerSettings
from pcam_pipeline.settings import ModelSettings
from pcam_pipeline.state import CURRENT, MODELS_PK, job_pk

EVENTS = Path(__file__).parents[2] / "events"
JOB = "pcam-pcam-train-0123456789"


@pytest.fixture
def lifecycle(aws_pipeline):
    settings = ModelSettings(
        bucket="data",
        state_table="state",
        event_bus="bus",
        alert_topic_arn=aws_pipeline.topic_arn,
        minimum_auc=0.9,
        decision_threshold=0.5,
        sagemaker=SageMakerSettings(role_arn="arn:aws:iam::123456789012:role/sm", region="us-east-1", bucket="data"),
    )
    boto3.client("s3").create_bucket(Bucket="data")
    lifecycle = ModelLifecycle(
        settings,
        s3=boto3.client("s3"),
        sagemaker=boto3.client("sagemaker"),
        state=aws_pipeline.state,
        publisher=aws_pipeline.publisher,
        alerter=Alerter(aws_pipeline.topic_arn, boto3.client("sns")),
    )
    aws_pipeline.state.put_new(job_pk(JOB), CURRENT, {"kind": "training", "dataset": "pcam", "status": "InProgress"})
    return lifecycle


def training_event(status: str, **extra) -> tuple[str, dict]:
    event = json.loads((EVENTS / "sagemaker-training-job-state-change.json").read_text())
    event["detail"].update(TrainingJobName=JOB, TrainingJobStatus=status, **extra)
    return event["detail-type"], event["detail"]


def test_a_completed_job_becomes_a_model_that_waits_for_a_test_split(lifecycle, aws_pipeline):
    result = lifecycle.on_event(*training_event("Completed"))
    assert result["model"] == JOB
    model = aws_pipeline.state.get(MODELS_PK, f"model#{JOB}")
    assert model["status"] == "awaiting test split"
    assert model["model_data_uri"] == f"s3://data/models/{JOB}/output/model.tar.gz"
    assert (
        boto3.client("sagemaker")
        .describe_model(ModelName=JOB)["PrimaryContainer"]["ModelDataUrl"]
        .endswith("model.tar.gz")
    )


def test_a_repeated_completed_event_creates_nothing_twice(lifecycle, aws_pipeline):
    lifecycle.on_event(*training_event("Completed"))
    lifecycle.on_event(*training_event("Completed"))
    assert len(aws_pipeline.state.query(MODELS_PK, "model#")) == 1


def test_a_late_in_progress_event_does_not_undo_completion(lifecycle, aws_pipeline):
    lifecycle.on_event(*training_event("Completed"))
    result = lifecycle.on_event(*training_event("InProgress"))
    assert result["status"] == "ignored" and "late InProgress" in result["reason"]
    assert aws_pipeline.state.get(job_pk(JOB))["status"] == "Completed"


def test_stopping_is_recorded_and_stopped_alerts_once(lifecycle, aws_pipeline):
    lifecycle.on_event(*training_event("Stopping"))
    assert aws_pipeline.state.get(job_pk(JOB))["status"] == "Stopping"
    lifecycle.on_event(*training_event("Stopped"))
    lifecycle.on_event(*training_event("Stopped"))
    (alert,) = aws_pipeline.alerts()
    assert "training job stopped for pcam" in alert["Subject"] and JOB in alert["Message"]
    assert aws_pipeline.state.get("dataset#pcam")["training_status"] == "Stopped"


def test_a_failed_job_records_its_reason(lifecycle, aws_pipeline):
    lifecycle.on_event(*training_event("Failed", FailureReason="ClientError: Unable to read the manifest"))
    job = aws_pipeline.state.get(job_pk(JOB))
    assert job["status"] == "Failed" and "Unable to read the manifest" in job["reason"]
    assert aws_pipeline.state.get("dataset#pcam")["failure_reason"] == "ClientError: Unable to read the manifest"
    assert "Unable to read the manifest" in aws_pipeline.alerts()[0]["Message"]


def test_other_events_are_ignored(lifecycle):
    assert lifecycle.on_event("Slide Scored", {"slide_id": "s"})["status"] == "ignored"
    detail_type, detail = training_event("Completed")
    assert lifecycle.on_event(detail_type, {**detail, "TrainingJobName": "not-ours"})["status"] == "ignored"

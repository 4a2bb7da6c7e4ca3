"""How the SageMaker flow reacts to each job status (in-memory fakes for state, bucket, SageMaker, bus, topic)."""

import json
from pathlib import Path

import pytest

from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.core.model_records import JobRecord
from pcam_pipeline.core.statuses import JobStatus, ModelStatus
from tests.fakes import flow_on_fakes

EVENTS = Path(__file__).parents[2] / "events"
JOB = "pcam-pcam-train-0123456789"


@pytest.fixture
def world():
    world = flow_on_fakes()
    world.state.create_job(JobRecord(JOB, JobKind.TRAINING, JobStatus.IN_PROGRESS, dataset="pcam"))
    world.state.record_training_status("pcam", JobStatus.IN_PROGRESS, latest_job=JOB)  # the dataset's latest
    return world


def training_event(status: str, **extra) -> tuple[str, dict]:
    event = json.loads((EVENTS / "sagemaker-training-job-state-change.json").read_text())
    event["detail"].update(TrainingJobName=JOB, TrainingJobStatus=status, **extra)
    return event["detail-type"], event["detail"]


def test_a_completed_job_becomes_a_model_that_waits_for_a_test_split(world):
    result = world.flow.on_event(*training_event("Completed"))
    assert result["model"] == JOB
    model = world.state.model(JOB)
    assert model.status is ModelStatus.AWAITING_TEST_SPLIT
    assert model.model_data_uri == f"s3://data/models/{JOB}/output/model.tar.gz"
    assert world.launcher.models[JOB]["PrimaryContainer"]["ModelDataUrl"].endswith("model.tar.gz")


def test_a_repeated_completed_event_creates_nothing_twice(world):
    world.flow.on_event(*training_event("Completed"))
    world.flow.on_event(*training_event("Completed"))
    assert len(world.state.models()) == 1 and len(world.launcher.models) == 1


def test_a_late_in_progress_event_does_not_undo_completion(world):
    world.flow.on_event(*training_event("Completed"))
    result = world.flow.on_event(*training_event("InProgress"))
    assert result["status"] == "ignored" and "late InProgress" in result["reason"]
    assert world.state.job(JOB).status is JobStatus.COMPLETED


def test_stopping_is_recorded_and_stopped_alerts_once(world):
    world.flow.on_event(*training_event("Stopping"))
    assert world.state.job(JOB).status is JobStatus.STOPPING
    world.flow.on_event(*training_event("Stopped"))
    world.flow.on_event(*training_event("Stopped"))
    ((subject, message),) = world.alerter.alerts
    assert "training job stopped for pcam" in subject and JOB in message
    assert world.state.get("dataset#pcam")["training_status"] == "Stopped"


def test_a_failed_job_records_its_reason(world):
    world.flow.on_event(*training_event("Failed", FailureReason="ClientError: Unable to read the manifest"))
    job = world.state.job(JOB)
    assert job.status is JobStatus.FAILED and "Unable to read the manifest" in job.reason
    assert world.state.get("dataset#pcam")["failure_reason"] == "ClientError: Unable to read the manifest"
    assert "Unable to read the manifest" in world.alerter.alerts[0][1]


def test_an_in_progress_event_read_before_a_failure_landed_does_not_hide_the_failure(world):
    """Two flow workers: one reads the job for "InProgress", the other records "Failed" meanwhile (as a CI run saw:
    the dataset's status was left at InProgress). The failure stands, on the job and on the dataset."""
    world.state.record_training_status("pcam", JobStatus.STARTING, latest_job=JOB)
    real_job, pending = world.state.job, [training_event("Failed", FailureReason="AlgorithmError: out of memory")]

    def read_then_let_the_failure_land(name):
        record = real_job(name)
        if pending:
            world.flow.on_event(*pending.pop())
        return record

    world.state.job = read_then_let_the_failure_land
    result = world.flow.on_event(*training_event("InProgress"))
    assert result["status"] == "ignored" and "late InProgress" in result["reason"]
    assert real_job(JOB).status is JobStatus.FAILED
    assert world.state.get("dataset#pcam")["training_status"] == "Failed"


def test_progress_of_a_training_reaches_its_dataset_only_while_it_is_the_latest_and_running(world):
    world.state.record_training_status("pcam", JobStatus.STARTING, latest_job=JOB)
    world.flow.on_event(*training_event("InProgress"))
    assert world.state.get("dataset#pcam")["training_status"] == "InProgress"
    world.state.record_training_status("pcam", JobStatus.STARTING, latest_job="pcam-pcam-train-newer")
    assert not world.state.record_training_progress("pcam", JOB, JobStatus.IN_PROGRESS)
    assert world.state.get("dataset#pcam")["training_status"] == "Starting"


def test_other_events_are_ignored(world):
    assert world.flow.on_event("Slide Scored", {"slide_id": "s"})["status"] == "ignored"
    detail_type, detail = training_event("Completed")
    assert world.flow.on_event(detail_type, {**detail, "TrainingJobName": "not-ours"})["status"] == "ignored"


@pytest.mark.parametrize("status", ["Deleting", "DeleteFailed", "SomethingNew"])
def test_a_status_the_pipeline_does_not_follow_is_ignored_not_retried_into_a_dead_letter_queue(world, status):
    result = world.flow.on_event(*training_event(status))
    assert result["status"] == "ignored" and status in result["reason"]
    assert world.state.job(JOB).status is JobStatus.IN_PROGRESS
    assert world.flow.on_event(*training_event("Completed"))["model"] == JOB, "later events still count"


def test_one_failure_reported_twice_at_once_is_announced_and_alerted_once(world):
    """SageMaker may report one failure in two events (two ids) that two workers handle at the same moment: the
    first delivery to claim the failure handles it; the other, arriving mid-way, leaves it alone. A retry of
    the first (its own id) may still finish it."""
    failed = training_event("Failed", FailureReason="ClientError: out of memory")
    record_failure, pending = world.state.record_job_failure, [True]

    def while_recording(*args, **kwargs):
        record_failure(*args, **kwargs)
        if pending:  # the other delivery runs between this one's first write and its announcement
            pending.pop()
            world.flow.on_event(*failed, "event-2")

    world.state.record_job_failure = while_recording
    world.flow.on_event(*failed, "event-1")
    assert len(world.alerter.alerts) == 1
    assert len([e for e in world.publisher.published if e[0] == "Model Failed"]) == 1
    world.flow.on_event(*failed, "event-1")  # the first delivery again: nothing is left to do
    assert len(world.alerter.alerts) == 1

"""Jobs whose inputs changed while they waited or ran: a replaced job never decides anything for the newer one.

Each test is one of the defects the review reproduced (shared/repros: cap_wait, cap_wait2, late_failure)."""

import numpy as np

from pcam_evaluation_job.evaluate_model import evaluate
from pcam_pipeline.aws import events
from pcam_pipeline.core import keys
from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.core.statuses import JobStatus
from pcam_pipeline.state import dataset_pk, split_pk
from tests.unit.test_sagemaker_flow import job_event, make_ready, make_world, split_ready, train_and_promote


def replace_split(world, split: str, count: int, token: str) -> None:
    """The lab drops the split again; its conversion is announced as ready."""
    make_ready(world.state, split_pk("ds", split), {"kind": "split", "dataset": "ds", "split": split}, count, token)
    world.flow.on_event(events.SPLIT_READY, {"dataset": "ds", "split": split})


def test_a_test_transform_waiting_for_capacity_is_replaced_when_the_test_split_changes():
    world = make_world()
    for split in ("train", "valid", "test"):
        split_ready(world, split)
    world.launcher.capacity_refusals = 1
    waiting = job_event(world, JobKind.TRAINING, "Completed")["transform_job"]
    replace_split(world, "test", 20, "ds-test-NEW")

    world.flow.on_event(events.SCHEDULED_TICK, {})

    (model,) = world.state.models()
    (started,) = world.launcher.names(JobKind.TEST_TRANSFORM)
    assert started != waiting and model.test_transform_job == started
    assert model.test_split == "ds/test ds-test-NEW"  # the split it is really evaluated on
    assert world.state.job(started).test_manifest.endswith("ds-test-NEW.manifest")
    assert world.state.job(waiting) is None  # no record of a job that never existed stays "Starting"
    assert world.state.capacity_waits() == []


def test_a_model_evaluated_on_a_replaced_test_split_is_not_promoted_over_one_evaluated_on_the_old():
    world = make_world(minimum_auc=0.5)
    first = train_and_promote(world)
    replace_split(world, "train", 30, "ds-train-2")
    world.launcher.capacity_refusals = 1
    job_event(world, JobKind.TRAINING, "Completed")
    replace_split(world, "test", 20, "ds-test-NEW")
    world.flow.on_event(events.SCHEDULED_TICK, {})
    job_event(world, JobKind.TEST_TRANSFORM, "Completed", name=world.launcher.names(JobKind.TEST_TRANSFORM)[-1])
    job_event(world, JobKind.VALIDATION_TRANSFORM, "Completed")
    second = next(m.model_name for m in world.state.models() if m.model_name != first)
    perfect = evaluate(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]))
    world.blobs.put_json(keys.evaluation_prefix(second) + "metrics.json", {**perfect, "dataset": "ds"})

    outcome = job_event(world, JobKind.EVALUATION, "Completed", name=world.launcher.names(JobKind.EVALUATION)[-1])

    assert outcome["promoted"] is False and "different test sets" in outcome["reason"]
    assert world.state.current_model().model_name == first


def test_a_repeated_training_completion_never_starts_a_second_test_transform_for_a_new_test_split():
    world = make_world()
    for split in ("train", "valid", "test"):
        split_ready(world, split)
    job_event(world, JobKind.TRAINING, "Completed")
    (running,) = world.launcher.names(JobKind.TEST_TRANSFORM)
    job_event(world, JobKind.TEST_TRANSFORM, "InProgress", name=running)
    replace_split(world, "test", 20, "ds-test-NEW")

    job_event(world, JobKind.TRAINING, "Completed")  # a late duplicate of the same training's event

    assert world.launcher.names(JobKind.TEST_TRANSFORM) == [running]
    assert world.state.models()[0].test_transform_job == running


def test_a_training_waiting_for_capacity_replaced_by_newer_splits_leaves_no_record_behind():
    world = make_world()
    world.launcher.capacity_refusals = 1
    split_ready(world, "train")
    split_ready(world, "valid")
    (waiting,) = [wait["sk"] for wait in world.state.capacity_waits()]
    replace_split(world, "train", 12, "ds-train-2")  # refused for capacity too: it waits as well
    world.flow.on_event(events.SCHEDULED_TICK, {})

    (started,) = world.launcher.names(JobKind.TRAINING)
    assert started != waiting and world.state.job(waiting) is None
    assert world.state.get(dataset_pk("ds"))["latest_job"] == started
    assert world.state.capacity_waits() == []


def test_a_superseded_trainings_late_failure_never_hides_the_newer_training():
    world = make_world()
    split_ready(world, "train")
    split_ready(world, "valid")
    (older,) = world.launcher.names(JobKind.TRAINING)
    job_event(world, JobKind.TRAINING, "InProgress", name=older)
    replace_split(world, "train", 12, "ds-train-2")
    newer = world.launcher.names(JobKind.TRAINING)[-1]

    job_event(world, JobKind.TRAINING, "Failed", name=older, FailureReason="out of memory")
    dataset = world.state.get(dataset_pk("ds"))
    assert dataset["training_status"] == JobStatus.STARTING and "failure_reason" not in dataset
    assert world.state.job(older).status is JobStatus.FAILED  # the older job's own record says what happened
    assert world.publisher.of_type(events.MODEL_FAILED)[0]["job"] == older

    job_event(world, JobKind.TRAINING, "Completed", name=newer)
    assert world.state.get(dataset_pk("ds"))["training_status"] == JobStatus.COMPLETED


def test_the_latest_trainings_failure_is_recorded_on_the_dataset():
    world = make_world()
    split_ready(world, "train")
    split_ready(world, "valid")
    job_event(world, JobKind.TRAINING, "Failed", FailureReason="out of memory")
    dataset = world.state.get(dataset_pk("ds"))
    assert dataset["training_status"] == JobStatus.FAILED and dataset["failure_reason"] == "out of memory"

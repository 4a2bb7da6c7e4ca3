"""The SageMaker side end to end on in-memory fakes: dataset → training → model → evaluation → promotion,
and slides scored with the current model. Behaviour, not SageMaker: the fakes accept each job once."""

import dataclasses
import io
import json
import uuid

import numpy as np
import pytest
from PIL import Image

from pcam_evaluation_job.calibration import calibration_figures
from pcam_evaluation_job.evaluate_model import evaluate
from pcam_pipeline.aws import events
from pcam_pipeline.core import keys
from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.core.records import SplitRecord
from pcam_pipeline.core.statuses import JobStatus, ModelStatus, ScoringStatus
from pcam_pipeline.scoring.slides import members_of
from pcam_pipeline.state import slide_pk, split_pk
from tests.fakes import flow_on_fakes, model_settings


def make_world(minimum_auc: float = 0.85, **sagemaker):
    return flow_on_fakes(model_settings(minimum_auc, **sagemaker))  # slides are scored as soon as they are ready


@pytest.fixture
def world():
    return make_world()


def make_ready(state, owner: str, fields: dict, count: int, token: str) -> None:
    state.start_patch_conversion(
        owner,
        {**fields, "x_run": token, "x_count": count, "shards_total": 1, "image_prefix": f"images/{token}/"},
        as_read=state.owner(owner) or SplitRecord(),
    )
    state.record_shard_done(owner, token, 0)
    lease = state.claim_ready(owner, token, "claimer")
    state.mark_ready(owner, f"manifests/{token}.manifest", lease)


def split_ready(world, split: str, count: int = 10, dataset: str = "ds") -> dict:
    fields = {"kind": "split", "dataset": dataset, "split": split}
    make_ready(world.state, split_pk(dataset, split), fields, count, f"{dataset}-{split}")
    return world.flow.on_event(events.SPLIT_READY, {"dataset": dataset, "split": split})


def sagemaker_event(kind: JobKind, name: str, status: str, **extra) -> tuple[str, dict]:
    """SageMaker's state-change event for a job of the pipeline: its detail-type and detail."""
    resource, name_field, status_field = {
        JobKind.TRAINING: ("Training", "TrainingJobName", "TrainingJobStatus"),
        JobKind.TEST_TRANSFORM: ("Transform", "TransformJobName", "TransformJobStatus"),
        JobKind.VALIDATION_TRANSFORM: ("Transform", "TransformJobName", "TransformJobStatus"),
        JobKind.SLIDE_SCORING: ("Transform", "TransformJobName", "TransformJobStatus"),
        JobKind.EVALUATION: ("Processing", "ProcessingJobName", "ProcessingJobStatus"),
        JobKind.SLIDE_STAGING: ("Processing", "ProcessingJobName", "ProcessingJobStatus"),
    }[kind]
    return f"SageMaker {resource} Job State Change", {name_field: name, status_field: status, **extra}


def job_event(world, kind: JobKind, status: str, name: str | None = None, **extra) -> dict:
    detail_type, detail = sagemaker_event(kind, name or world.launcher.names(kind)[-1], status, **extra)
    return world.flow.on_event(detail_type, detail, str(uuid.uuid4()))


def train_until_metrics(world) -> str:
    """A dataset trained, its test and validation splits scored; the evaluation job has written metrics.json
    (AUC 8/9)."""
    split_ready(world, "train")
    split_ready(world, "valid")
    split_ready(world, "test")
    job_event(world, JobKind.TRAINING, "Completed")
    job_event(world, JobKind.TEST_TRANSFORM, "Completed")
    job_event(world, JobKind.VALIDATION_TRANSFORM, "Completed")
    (model_name,) = [m.model_name for m in world.state.models()]
    labels, scores = np.array([0, 0, 1, 1, 0, 1]), np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    metrics = {**evaluate(labels, scores), "dataset": "ds"}  # what the evaluation job writes
    world.blobs.put_json(keys.evaluation_prefix(model_name) + "metrics.json", metrics)
    return model_name


def train_and_promote(world) -> str:
    model_name = train_until_metrics(world)
    job_event(world, JobKind.EVALUATION, "Completed")
    return model_name


def test_training_waits_for_both_train_and_valid_then_starts_once(world):
    assert split_ready(world, "train")["status"] == "waiting for both train and valid"
    started = split_ready(world, "valid")
    assert started["status"] == "started" and started["kind"] == JobKind.TRAINING
    assert world.flow.on_event(events.SPLIT_READY, {"dataset": "ds", "split": "valid"})["status"] == "already started"
    (name,) = world.launcher.names(JobKind.TRAINING)
    request = world.launcher.started[name][1]
    assert request["HyperParameters"]["num_training_samples"] == "10"
    assert world.state.get("dataset#ds")["latest_job"] == name


def test_tuning_is_started_instead_when_configured_and_its_best_trial_becomes_the_model():
    world = make_world(tuning_max_jobs=3)
    split_ready(world, "train")
    split_ready(world, "valid")
    (tuning,) = world.launcher.names(JobKind.TUNING)
    world.launcher.best_of_tuning[tuning] = f"{tuning}-002-abc"
    world.flow.on_event(
        "SageMaker HyperParameter Tuning Job State Change",
        {"HyperParameterTuningJobName": tuning, "HyperParameterTuningJobStatus": "Completed"},
    )
    (model,) = world.state.models()
    assert (model.model_name, model.tuning_job) == (f"{tuning}-002-abc", tuning)


def test_an_invalid_job_request_fails_the_job_and_alerts_instead_of_retrying():
    world = make_world(max_runtime_seconds=0)  # SageMaker's model requires at least 1
    split_ready(world, "train")
    result = split_ready(world, "valid")
    assert result["status"] == "failed" and "MaxRuntimeInSeconds" in result["reason"]
    assert world.launcher.started == {}
    assert world.state.job(result["job"]).status is JobStatus.FAILED
    assert "the job request is invalid" in world.alerter.alerts[0][1]


def test_a_model_is_evaluated_and_promoted_and_each_step_is_announced(world):
    model_name = train_and_promote(world)
    model = world.state.model(model_name)
    assert model.status is ModelStatus.EVALUATED and model.decision["promote"]
    assert world.state.current_model().model_name == model_name
    assert world.blobs.exists(keys.evaluation_prefix(model_name) + "roc.png")
    context = json.loads(world.blobs.get_bytes(keys.evaluation_prefix(model_name) + "context.json"))
    assert context["model_name"] == model_name and context["test_manifest"].endswith("ds-test.manifest")
    (evaluated,) = world.publisher.of_type(events.MODEL_EVALUATED)
    assert evaluated["promoted"] and evaluated["metrics"]["auc"] == pytest.approx(8 / 9)
    assert world.publisher.of_type(events.MODEL_PROMOTED)[0]["model_name"] == model_name


def test_an_evaluation_without_metrics_fails_the_model_and_alerts(world):
    split_ready(world, "train")
    split_ready(world, "valid")
    split_ready(world, "test")
    job_event(world, JobKind.TRAINING, "Completed")
    job_event(world, JobKind.TEST_TRANSFORM, "Completed")
    assert job_event(world, JobKind.VALIDATION_TRANSFORM, "Completed")["evaluation"] == "computing metrics"
    result = job_event(world, JobKind.EVALUATION, "Completed")
    assert result["status"] == "failed" and "no readable metrics.json" in result["reason"]
    (model,) = world.state.models()
    assert model.status is ModelStatus.EVALUATION_FAILED
    assert world.state.current_model() is None
    assert "evaluation job failed for ds" in world.alerter.alerts[0][0]


def test_a_model_without_a_test_split_waits_and_a_later_test_split_evaluates_it(world):
    split_ready(world, "train")
    split_ready(world, "valid")
    job_event(world, JobKind.TRAINING, "Completed")
    assert world.state.models()[0].status is ModelStatus.AWAITING_TEST_SPLIT
    assert split_ready(world, "test")["models"] == [world.state.models()[0].model_name]
    assert world.state.models()[0].status is ModelStatus.EVALUATING


def slide_ready(world, slide_id: str = "s1", count: int = 6) -> dict:
    key = f"incoming/slides/{slide_id}.h5"
    world.state.record_file_received(key, "v1")
    fields = {"kind": "slide", "slide_id": slide_id, "x_key": key, "x_version": "v1"}
    make_ready(world.state, slide_pk(slide_id), fields, count, f"{slide_id}-r")
    return world.flow.on_event(events.SLIDE_READY, {"slide_id": slide_id, "run_id": f"{slide_id}-r"})


def write_outputs(world, job_name: str, probabilities, slide_id: str | None = None) -> None:
    """What the transform writes for one slide of the job (the only one, or ``slide_id``)."""
    members = members_of(world.state.job(job_name))
    (member,) = [m for m in members if slide_id in (None, m["slide_id"])]
    for index, p in enumerate(probabilities):
        name = keys.patch_file_name(index, member["image_prefix"])
        world.blobs.put_json(f"{member['outputs']}{name}.out", {"prediction": [1 - p, p]})


def test_a_slide_waits_for_a_model_and_is_scored_when_one_is_promoted(world):
    assert slide_ready(world)["status"] == "waiting for a model"
    assert world.state.slide("s1").scoring_status is ScoringStatus.WAITING_FOR_MODEL
    train_and_promote(world)
    world.flow.on_event(events.MODEL_PROMOTED, {})
    (name,) = world.launcher.names(JobKind.SLIDE_SCORING)
    probabilities = np.linspace(0, 1, 6)
    write_outputs(world, name, probabilities)
    assert job_event(world, JobKind.SLIDE_SCORING, "Completed")["status"] == "scored"
    rows = world.blobs.get_bytes("predictions/s1.csv").decode().splitlines()
    assert len(rows) == 7 and rows[1].startswith("s1,0,,,0.000000,0")
    (scored,) = world.publisher.of_type(events.SLIDE_SCORED)
    assert scored["tumour_patch_count"] == 3 and scored["summary_uri"] == "s3://data/predictions/s1.json"
    assert scored["dropped_at"] is not None and scored["input_key"] == "incoming/slides/s1.h5"
    # No coords: three tiles at or above the threshold, which cannot be grouped into lesions or measured.
    assert scored["verdict"]["category"] == "indeterminate" and scored["verdict"]["lesion_count"] is None
    assert scored["report_uri"] == "s3://data/predictions/s1.html"
    assert b"Indeterminate: 3 tiles" in world.blobs.get_bytes("predictions/s1.html")
    assert world.state.slide("s1").scoring_status is ScoringStatus.SCORED
    assert job_event(world, JobKind.SLIDE_SCORING, "Completed")["status"] == "already scored"
    assert len(world.publisher.of_type(events.SLIDE_SCORED)) == 1


def test_a_missing_prediction_fails_the_slide_without_a_partial_csv(world):
    train_and_promote(world)
    slide_ready(world)
    (name,) = world.launcher.names(JobKind.SLIDE_SCORING)
    write_outputs(world, name, [0.2] * 5)  # one of six lost
    result = job_event(world, JobKind.SLIDE_SCORING, "Completed")
    assert result["status"] == "failed" and "prediction of patch 5" in result["reason"]
    assert not world.blobs.exists("predictions/s1.csv")
    slide = world.state.slide("s1")
    assert slide.scoring_status is ScoringStatus.FAILED and name in slide.scoring_failure
    assert "No result is written for the slide." in world.alerter.alerts[-1][1]


def test_a_late_transform_of_an_older_upload_writes_nothing(world):
    train_and_promote(world)
    slide_ready(world)
    (old,) = world.launcher.names(JobKind.SLIDE_SCORING)
    make_ready(world.state, slide_pk("s1"), {"kind": "slide", "slide_id": "s1"}, 6, "s1-new")
    write_outputs(world, old, [0.9] * 6)
    assert job_event(world, JobKind.SLIDE_SCORING, "Completed", name=old)["status"] == "superseded"
    assert not world.blobs.exists("predictions/s1.csv")


def test_a_repeated_training_completed_after_evaluation_changes_nothing(world):
    model_name = train_and_promote(world)
    before = world.state.model(model_name)
    job_event(world, JobKind.TRAINING, "Completed")  # EventBridge delivered it again, later
    after = world.state.model(model_name)
    assert after.status is ModelStatus.EVALUATED and after.metrics == before.metrics
    assert len(world.launcher.names(JobKind.TEST_TRANSFORM)) == 1


def test_a_repeated_evaluation_completed_announces_the_model_once(world):
    train_and_promote(world)
    job_event(world, JobKind.EVALUATION, "Completed")  # a second delivery: another event id
    assert len(world.publisher.of_type(events.MODEL_EVALUATED)) == 1
    assert len(world.publisher.of_type(events.MODEL_PROMOTED)) == 1


def test_a_retried_delivery_announces_what_its_failed_attempt_could_not():
    world = make_world()
    train_until_metrics(world)
    name = world.launcher.names(JobKind.EVALUATION)[-1]
    detail = {"ProcessingJobName": name, "ProcessingJobStatus": "Completed"}
    publish = world.publisher.publish
    world.publisher.publish = lambda detail_type, body: (_ for _ in ()).throw(RuntimeError("the bus is down"))
    with pytest.raises(RuntimeError):
        world.flow.on_event("SageMaker Processing Job State Change", detail, "event-1")
    world.publisher.publish = publish
    world.flow.on_event("SageMaker Processing Job State Change", detail, "event-1")  # the queue's retry
    world.flow.on_event("SageMaker Processing Job State Change", detail, "event-2")  # a duplicate event
    assert len(world.publisher.of_type(events.MODEL_EVALUATED)) == 1


def test_a_scored_slide_keeps_its_result_when_another_model_is_promoted(world):
    train_and_promote(world)
    slide_ready(world)
    (name,) = world.launcher.names(JobKind.SLIDE_SCORING)
    write_outputs(world, name, np.linspace(0, 1, 6))
    job_event(world, JobKind.SLIDE_SCORING, "Completed")
    csv_before = world.blobs.get_bytes("predictions/s1.csv")
    split_ready(world, "train", dataset="second")
    split_ready(world, "valid", dataset="second")
    job_event(world, JobKind.TRAINING, "Completed")  # the second dataset's model, awaiting a test split
    second = next(m.model_name for m in world.state.models() if m.dataset == "second")
    world.flow.registry.promote(second, by="ops")
    world.flow.on_event(events.MODEL_PROMOTED, {"model_name": second})
    assert world.launcher.names(JobKind.SLIDE_SCORING) == [name]  # not rescored
    assert world.blobs.get_bytes("predictions/s1.csv") == csv_before


def test_dropping_train_again_trains_again_on_the_new_upload(world):
    split_ready(world, "train")
    split_ready(world, "valid")
    fields = {"kind": "split", "dataset": "ds", "split": "train"}
    make_ready(world.state, split_pk("ds", "train"), fields, 12, "ds-train-again")
    world.flow.on_event(events.SPLIT_READY, {"dataset": "ds", "split": "train"})
    first, second = world.launcher.names(JobKind.TRAINING)
    assert first != second
    request = world.launcher.started[second][1]
    assert request["HyperParameters"]["num_training_samples"] == "12"
    assert request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"].endswith("ds-train-again.manifest")


def test_sagemaker_refusing_training_or_evaluation_for_capacity_is_a_wait_the_tick_ends_without_an_alert():
    world = make_world()
    world.launcher.capacity_refusals = 1
    split_ready(world, "train")
    assert split_ready(world, "valid")["status"] == "waiting for SageMaker capacity"
    assert world.launcher.names(JobKind.TRAINING) == [] and world.alerter.alerts == []
    world.launcher.capacity_refusals = 1  # still no room at the first tick
    world.flow.on_event(events.SCHEDULED_TICK, {})
    assert world.launcher.names(JobKind.TRAINING) == [] and len(world.state.capacity_waits()) == 1
    tick = world.flow.on_event(events.SCHEDULED_TICK, {})
    (training,) = world.launcher.names(JobKind.TRAINING)
    assert tick["capacity_waits"] == {training: "started"} and world.state.capacity_waits() == []
    split_ready(world, "test")
    world.launcher.capacity_refusals = 1
    assert job_event(world, JobKind.TRAINING, "Completed")["evaluation"] == "waiting for SageMaker capacity"
    world.flow.on_event(events.SCHEDULED_TICK, {})
    assert world.launcher.names(JobKind.TEST_TRANSFORM), "the test transform started at the next tick"
    world.launcher.capacity_refusals = 1
    assert job_event(world, JobKind.TEST_TRANSFORM, "Completed")["evaluation"] == "waiting for SageMaker capacity"
    world.flow.on_event(events.SCHEDULED_TICK, {})
    assert world.launcher.names(JobKind.VALIDATION_TRANSFORM), "the validation transform started at the next tick"
    world.launcher.capacity_refusals = 1
    assert job_event(world, JobKind.VALIDATION_TRANSFORM, "Completed")["evaluation"] == "waiting for SageMaker capacity"
    world.flow.on_event(events.SCHEDULED_TICK, {})
    assert world.launcher.names(JobKind.EVALUATION) and world.state.capacity_waits() == []
    (evaluation,) = world.launcher.names(JobKind.EVALUATION)
    inputs = {i["InputName"] for i in world.launcher.started[evaluation][1]["ProcessingInputs"]}
    assert {"valid_labels", "valid_predictions"} <= inputs, "the waiting evaluation kept its validation outputs"
    assert world.alerter.alerts == [], "waits are never failures"


def test_a_model_is_calibrated_on_the_validation_split_it_was_trained_with_and_scores_slides_calibrated(world):
    for split in ("train", "valid", "test"):
        split_ready(world, split)
    job_event(world, JobKind.TRAINING, "Completed")
    assert job_event(world, JobKind.TEST_TRANSFORM, "Completed")["evaluation"] == "scoring the validation split"
    (validation,) = world.launcher.names(JobKind.VALIDATION_TRANSFORM)
    source = world.launcher.started[validation][1]["TransformInput"]["DataSource"]["S3DataSource"]
    assert source == {"S3DataType": "S3Prefix", "S3Uri": "s3://data/images/ds-valid/"}
    job_event(world, JobKind.VALIDATION_TRANSFORM, "Completed")
    (evaluation,) = world.launcher.names(JobKind.EVALUATION)
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in world.launcher.started[evaluation][1]["ProcessingInputs"]}
    (model_name,) = [m.model_name for m in world.state.models()]
    assert inputs["valid_labels"] == "s3://data/manifests/ds-valid.manifest"
    assert inputs["valid_predictions"] == f"s3://data/evaluations/{model_name}/validation-predictions/"
    assert inputs["code"].endswith("/") and world.blobs.exists(inputs["code"][len("s3://data/") :] + "calibration.py")
    context = json.loads(world.blobs.get_bytes(keys.evaluation_prefix(model_name) + "context.json"))
    assert context["valid_images_prefix"] == "s3://data/images/ds-valid/" and context["target_sensitivity"] == 0.95
    assert context["threshold_override"] == 0.5  # the tests' settings override every model's threshold

    sigmoid = {"method": "sigmoid", "slope": 2.0, "intercept": 0.0}
    metrics = {
        **evaluate(np.array([0, 1, 1, 0]), np.array([0.1, 0.8, 0.9, 0.3])),
        "dataset": "ds",
        "calibration": {
            **sigmoid,
            "cv_log_loss": {"sigmoid": 0.3, "isotonic": 0.4},
            "test": calibration_figures([0, 1, 1, 0], [0.1, 0.8, 0.9, 0.3], [0.0, 0.9, 1.0, 0.1]),
        },
        "operating_point": {"threshold": 0.7, "test_sensitivity": 1.0, "test_sensitivity_ci95": [0.34, 1.0]},
    }
    world.blobs.put_json(keys.evaluation_prefix(model_name) + "metrics.json", metrics)  # fmt: skip
    assert job_event(world, JobKind.EVALUATION, "Completed")["promoted"]
    model = world.state.model(model_name)
    assert model.calibration == {**sigmoid, "cv_log_loss": {"sigmoid": 0.3, "isotonic": 0.4}}
    assert model.operating_threshold == 0.7 and model.metrics["sensitivity_ci95"] == [0.34, 1.0]
    assert model.metrics["calibration"] == "sigmoid" and model.metrics["ece"] is not None
    assert Image.open(io.BytesIO(world.blobs.get_bytes(keys.evaluation_prefix(model_name) + "reliability.png")))

    slide_ready(world, count=2)
    write_outputs(world, world.launcher.names(JobKind.SLIDE_SCORING)[-1], [0.5, 0.9])
    job_event(world, JobKind.SLIDE_SCORING, "Completed")
    rows = world.blobs.get_bytes("predictions/s1.csv").decode().splitlines()
    calibrated = 1 / (1 + np.exp(-2 * np.log(9)))  # the sigmoid of 0.9's log-odds, doubled
    assert rows[1:] == ["s1,0,,,0.500000,1,0.500000,unchecked", f"s1,1,,,{calibrated:.6f},1,0.900000,unchecked"]
    summary = json.loads(world.blobs.get_bytes("predictions/s1.json"))
    assert (summary["calibration"], summary["threshold"]) == ("sigmoid", 0.5), "the operator's override"


def test_without_an_override_each_model_labels_at_its_own_operating_threshold():
    world = flow_on_fakes(dataclasses.replace(model_settings(), decision_threshold=None))
    model_name = train_until_metrics(world)
    metrics = {**json.loads(world.blobs.get_bytes(keys.evaluation_prefix(model_name) + "metrics.json")),
               "operating_point": {"threshold": 0.85}}  # fmt: skip
    world.blobs.put_json(keys.evaluation_prefix(model_name) + "metrics.json", metrics)
    job_event(world, JobKind.EVALUATION, "Completed")
    slide_ready(world, count=2)
    write_outputs(world, world.launcher.names(JobKind.SLIDE_SCORING)[-1], [0.8, 0.9])
    job_event(world, JobKind.SLIDE_SCORING, "Completed")
    rows = world.blobs.get_bytes("predictions/s1.csv").decode().splitlines()
    assert [row.split(",")[5] for row in rows[1:]] == ["0", "1"]
    assert json.loads(world.blobs.get_bytes("predictions/s1.json"))["verdict"]["operating_threshold"] == 0.85

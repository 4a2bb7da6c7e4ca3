"""The operator's cost limits: a lab's training.json cannot ask for hardware, instances or epochs beyond them,
no request the pipeline sends can, and a dataset cannot start trainings without end."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from pcam_pipeline.core.cost_limits import CostLimits
from pcam_pipeline.core.errors import InvalidInput, InvalidJobRequest
from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.core.settings import cost_limits
from pcam_pipeline.core.statuses import JobStatus
from pcam_pipeline.ingestion.training_settings import parse_training_settings
from pcam_pipeline.models import inference_requests, sagemaker_jobs
from pcam_pipeline.models.sagemaker_jobs import SageMakerSettings, TrainingInputs
from pcam_pipeline.state import split_pk
from tests.fakes import flow_on_fakes, model_settings
from tests.unit.test_sagemaker_flow import make_ready

LIMITS = CostLimits()


def checked(document: dict) -> None:
    LIMITS.check_training_settings(parse_training_settings(json.dumps(document).encode()))


@pytest.mark.parametrize(
    ("document", "problem", "found"),
    [
        ({"instance_type": "ml.p5.48xlarge", "instance_count": 100}, "AllowedTrainingInstanceTypes", "ml.p5.48xlarge"),
        ({"instance_type": "ml.p4d.24xlarge", "hyperparameters": {"epochs": 100000}}, "AllowedTraining", "p4d"),
        ({"instance_type": "ml.g4dn.xlarge", "instance_count": 3}, "MaxInstanceCount", "3"),
        ({"hyperparameters": {"epochs": 100000}}, "MaxTrainingEpochs", "100000"),
        ({"hyperparameters": {"epochs": "1e9"}}, "MaxTrainingEpochs", "'1e9'"),
        ({"hyperparameters": {"epochs": 2.5}}, "MaxTrainingEpochs", "2.5"),
    ],
)
def test_a_training_json_beyond_the_limits_is_refused_naming_the_limit(document, problem, found):
    with pytest.raises(InvalidInput) as refusal:
        checked(document)
    assert problem in refusal.value.problem and found in refusal.value.found


def test_a_training_json_within_the_limits_is_accepted():
    checked({"instance_type": "ml.g4dn.xlarge", "instance_count": 2, "hyperparameters": {"epochs": 100}})
    checked({})


def test_the_limits_come_from_the_environment_the_template_sets():
    env = {
        "ALLOWED_TRAINING_INSTANCE_TYPES": "ml.g5.xlarge, ml.g5.2xlarge",
        "ALLOWED_TRANSFORM_INSTANCE_TYPES": "ml.c5.xlarge",
        "ALLOWED_PROCESSING_INSTANCE_TYPES": "ml.m5.large",
        "MAX_INSTANCE_COUNT": "4",
        "MAX_TRAINING_EPOCHS": "50",
        "MAX_TRAINING_STARTS_PER_DAY": "2",
    }
    assert cost_limits(env) == CostLimits(
        ("ml.g5.xlarge", "ml.g5.2xlarge"), ("ml.c5.xlarge",), ("ml.m5.large",), 4, 50, 2
    )
    assert cost_limits({}) == CostLimits()


def sagemaker_settings(**fields) -> SageMakerSettings:
    return SageMakerSettings(role_arn="arn:aws:iam::123456789012:role/sm", region="us-east-1", bucket="data", **fields)


@pytest.mark.parametrize(
    ("build", "problem"),
    [
        (
            lambda: sagemaker_jobs.training_job_request(
                sagemaker_settings(instance_type="ml.p5.48xlarge"),
                TrainingInputs("pcam-x", "s3://d/a", "s3://d/b", 10, 96),
            ),
            "ml.p5.48xlarge is not among the allowed",
        ),
        (
            lambda: sagemaker_jobs.tuning_job_request(
                sagemaker_settings(instance_count=3, tuning_max_jobs=4),
                TrainingInputs("pcam-x", "s3://d/a", "s3://d/b", 10, 96),
            ),
            "3 instances is more than MaxInstanceCount",
        ),
        (
            lambda: sagemaker_jobs.training_job_request(
                sagemaker_settings(hyperparameter_overrides={"epochs": 500}),
                TrainingInputs("pcam-x", "s3://d/a", "s3://d/b", 10, 96),
            ),
            "500 epochs is more than MaxTrainingEpochs",
        ),
        (
            lambda: inference_requests.transform_request(
                sagemaker_settings(transform_instance_type="ml.p3.16xlarge"), "pcam-t", "m", "s3://d/i", "s3://d/o", {}
            ),
            "ml.p3.16xlarge is not among the allowed",
        ),
        (
            lambda: inference_requests.evaluation_request(
                sagemaker_settings(evaluation_instance_type="ml.m5.24xlarge"),
                "pcam-e",
                "s3://d/c/e.py",
                {},
                "s3://d/o",
                {},
            ),
            "ml.m5.24xlarge is not among the allowed",
        ),
    ],
    ids=["training-type", "tuning-count", "epochs", "transform-type", "processing-type"],
)
def test_no_request_beyond_the_limits_is_ever_built(build, problem):
    with pytest.raises(InvalidJobRequest, match=problem):
        build()


def train_once(world, upload: int, dataset: str = "ds") -> dict:
    """A new upload of the dataset's splits: a new training to start."""
    for split in ("train", "valid"):
        fields = {"kind": "split", "dataset": dataset, "split": split}
        make_ready(world.state, split_pk(dataset, split), fields, 10, f"{dataset}-{split}-{upload}")
    return world.flow.on_event("Split Ready", {"dataset": dataset, "split": "valid"})


def test_a_dataset_starts_at_most_the_daily_cap_of_trainings_and_may_start_again_the_next_day():
    world = flow_on_fakes(model_settings())
    cap = LIMITS.max_training_starts_per_day
    day = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    with time_machine.travel(day, tick=False) as clock:
        outcomes = [train_once(world, upload)["status"] for upload in range(cap + 1)]
        assert outcomes == ["started"] * cap + ["refused"]
        assert train_once(world, 0, dataset="other")["status"] == "started", "the cap is per dataset"
        refused = world.state.job(world.state.get("dataset#ds")["latest_job"])
        assert refused.status is JobStatus.FAILED and "MaxTrainingStartsPerDay" in refused.reason
        assert "MaxTrainingStartsPerDay" in world.alerter.alerts[-1][1], "operators hear of it"
        assert len(world.launcher.names(JobKind.TRAINING)) == cap + 1
        clock.move_to(day + timedelta(days=1))
        assert train_once(world, cap + 1)["status"] == "started"


def test_a_repeated_event_for_a_started_training_takes_no_second_start_of_the_day():
    world = flow_on_fakes(model_settings())
    train_once(world, 0)
    for _ in range(LIMITS.max_training_starts_per_day + 1):
        assert world.flow.on_event("Split Ready", {"dataset": "ds", "split": "valid"})["status"] == "already started"
    assert train_once(world, 1)["status"] == "started"


def test_the_epochs_assumed_when_none_are_given_are_the_default_recipes():
    import json
    from pathlib import Path

    from pcam_pipeline.core.cost_limits import DEFAULT_EPOCHS

    recipe = Path(__file__).resolve().parents[2] / "training" / "pcam_training" / "hyperparameters.json"
    assert int(json.loads(recipe.read_text())["epochs"]) == DEFAULT_EPOCHS

"""A dataset's own training.json: parsed plainly, refused with a reason, applied to its training only."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcam_pipeline.core.dropped_files import DatasetSettingsFile, classify_incoming_key
from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.core.statuses import JobStatus
from pcam_pipeline.ingestion.training_settings import parse_training_settings
from tests.unit.test_sagemaker_flow import make_world, split_ready


def test_training_json_beside_a_datasets_files_is_its_settings():
    assert classify_incoming_key("incoming/datasets/lab a/training.json") == DatasetSettingsFile("lab a")
    with pytest.raises(InvalidInput, match="HDF5 file"):
        classify_incoming_key("incoming/datasets/lab a/notes.json")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1]", "must hold a JSON object"),
        (b'{"instance_type": "ml.t2.nano"}', "not a SageMaker training instance type"),
        (b'{"instance_count": 0}', "whole number from 1 to 100"),
        (b'{"hyperparameters": {"epochs": [1]}}', "object of plain values"),
        (b'{"epoch": 1}', "does not know"),
        (b" " * 70_000, "too large"),
        (b"[" * 3000, "nests objects or arrays too deeply"),  # was a RecursionError, dead-lettered
        (b'{"hyperparameters": {"epochs": 1' + b"0" * 400 + b"}}", "a number the pipeline cannot use"),
        (b'{"hyperparameters": {"learning_rate": Infinity}}', "a number the pipeline cannot use"),
    ],
)
def test_unusable_settings_are_refused_plainly(body, problem):
    with pytest.raises(InvalidInput, match=problem):
        parse_training_settings(body)


def test_a_datasets_settings_apply_to_its_training_and_no_other():
    world = make_world()
    settings = parse_training_settings(
        json.dumps({"instance_type": "ml.g4dn.xlarge", "hyperparameters": {"epochs": 1}}).encode()
    )
    world.state.record_training_settings("smoke", settings, "incoming/datasets/smoke/training.json", "v1")
    for dataset in ("smoke", "other"):
        split_ready(world, "train", dataset=dataset)
        split_ready(world, "valid", dataset=dataset)
    requests = {
        world.launcher.started[name][1]["TrainingJobName"]: world.launcher.started[name][1]
        for name in world.launcher.names(JobKind.TRAINING)
    }
    smoke = next(r for n, r in requests.items() if "smoke" in n)
    other = next(r for n, r in requests.items() if "other" in n)
    assert smoke["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge" and smoke["HyperParameters"]["epochs"] == "1"
    assert other["ResourceConfig"]["InstanceType"] == "ml.p3.2xlarge" and other["HyperParameters"]["epochs"] == "15"


def test_settings_the_algorithm_refuses_fail_that_training_with_the_reason():
    world = make_world()
    world.state.record_training_settings("bad", {"hyperparameters": {"num_layers": 20}}, "k", "v")
    split_ready(world, "train", dataset="bad")
    result = split_ready(world, "valid", dataset="bad")
    assert result["status"] == "failed" and "num_layers 20 does not exist for 224x224" in result["reason"]
    assert world.state.job(result["job"]).status is JobStatus.FAILED


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.text(alphabet='[]{}",:0123456789.eE-+ \\truefalsnNIfiy', max_size=300).map(str.encode),
    )
)
def test_any_bytes_a_lab_sends_are_settings_or_a_reason_never_another_exception(body):
    from pcam_pipeline.ingestion.training_settings import parse_training_settings
    from pcam_pipeline.wsi.ingestion import parse_sidecar

    for parse in (parse_training_settings, parse_sidecar):
        try:
            parse(body)
        except InvalidInput as refusal:
            assert refusal.problem

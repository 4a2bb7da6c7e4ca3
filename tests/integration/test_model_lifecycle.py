"""From complete datasets to a promoted model, through the local stack and its local SageMaker.

This module has a stack of its own: which model is current is global to a deployment, and these
tests need to know it.
"""

import io
import json

import numpy as np
import pytest
from PIL import Image

from pcam_ops.cli import main
from pcam_synth.synth import synth_split
from tests.integration.conftest import INTEGRATION

pytestmark = [*INTEGRATION, pytest.mark.scenario]  # steps of one story, in order

SIZES = {"train": 300, "valid": 100, "test": 160}


@pytest.fixture(scope="module")
def stack(private_stack):
    return private_stack


def drop_dataset(pipeline, dataset, splits=("train", "valid", "test"), seed=0, shuffle_labels=False):
    rng = np.random.default_rng(seed)
    for split in splits:
        x, y = synth_split(SIZES[split], rng)
        if shuffle_labels and split != "test":
            y = rng.permutation(y)  # a model that learns nothing
        pipeline.drop_split(dataset, split, x, y)
    pipeline.settle()


def jobs_of(stack, dataset, kind=None):
    return [
        r
        for r in stack.records()
        if r["pk"].startswith("job#") and r["dataset"] == dataset and (kind is None or r["kind"] == kind)
    ]


def model_of(stack, dataset):
    (model,) = [r for r in stack.state.query("models", "model#") if r["dataset"] == dataset]
    return model


def current_model(stack):
    return stack.state.get("models", "current")


def test_a_complete_dataset_trains_evaluates_and_promotes_the_first_model(stack, pipeline):
    drop_dataset(pipeline, "first")
    (training,) = jobs_of(stack, "first", "training")
    assert training["status"] == "Completed" and training["train_count"] == SIZES["train"]
    model = model_of(stack, "first")
    assert model["status"] == "evaluated" and model["decision"]["promote"] is True
    assert model["metrics"]["count"] == SIZES["test"] and model["metrics"]["auc"] >= 0.9

    current = current_model(stack)
    assert current["model_name"] == model["model_name"] and current["dataset"] == "first"
    assert current["promoted_by"].startswith("pipeline") and "first model" in current["reason"]

    prefix = f"evaluations/{model['model_name']}/"
    metrics = pipeline.json(prefix + "metrics.json")
    for field in ("recall", "precision", "f1", "auc", "accuracy", "confusion_matrix", "roc", "threshold"):
        assert field in metrics
    assert metrics["training_job"] == training["pk"].removeprefix("job#")
    assert metrics["hyperparameters"]["num_training_samples"] == str(SIZES["train"])
    assert metrics["dataset"] == "first" and metrics["evaluated_at"] and metrics["model_created_at"]
    assert sum(metrics["confusion_matrix"].values()) == SIZES["test"]
    assert stack.read(prefix + "roc.csv").decode().startswith("threshold,false_positive_rate,true_positive_rate\n")
    assert Image.open(io.BytesIO(stack.read(prefix + "roc.png"))).format == "PNG"

    (promoted,) = pipeline.events_for("Model Promoted", model_name=model["model_name"])
    assert promoted["detail"]["previous_model"] is None
    (evaluated,) = pipeline.events_for("Model Evaluated", model_name=model["model_name"])
    assert evaluated["detail"]["promoted"] is True


def test_duplicate_ready_events_start_no_second_training_job(stack, pipeline):
    """EventBridge is at-least-once: replaying a dataset's Split Ready events changes nothing."""
    before = len([e for e in stack.sagemaker.events_sent if "Training" in e["detail-type"]])
    for ready in pipeline.events_for("Split Ready", dataset="first"):
        pipeline.publish_again(ready)
    pipeline.settle()
    assert len(jobs_of(stack, "first", "training")) == 1
    assert len([e for e in stack.sagemaker.events_sent if "Training" in e["detail-type"]]) == before


def test_a_model_below_the_minimum_auc_is_not_promoted(stack, pipeline):
    current_before = current_model(stack)["model_name"]
    drop_dataset(pipeline, "noise", seed=1, shuffle_labels=True)
    model = model_of(stack, "noise")
    assert model["status"] == "evaluated"
    assert model["decision"]["promote"] is False and "below the required" in model["decision"]["reason"]
    assert current_model(stack)["model_name"] == current_before


def test_without_a_test_split_a_model_waits_and_is_evaluated_when_one_arrives(stack, pipeline):
    drop_dataset(pipeline, "late-test", splits=("train", "valid"), seed=2)
    model = model_of(stack, "late-test")
    assert model["status"] == "awaiting test split" and "decision" not in model
    assert not jobs_of(stack, "late-test", "test transform")

    drop_dataset(pipeline, "late-test", splits=("test",), seed=3)
    model = model_of(stack, "late-test")
    assert model["status"] == "evaluated" and "decision" in model
    assert stack.list_keys(f"evaluations/{model['model_name']}/metrics.json")


@pytest.mark.parametrize("outcome", ["Failed", "Stopped"])
def test_a_training_job_that_fails_or_stops_is_recorded_and_alerts_operators(stack, pipeline, alerts, outcome):
    alerts()  # empty the mailbox
    reason = "AlgorithmError: CUDA out of memory" if outcome == "Failed" else "stopped by an operator"
    stack.sagemaker.outcome_next["TrainingJob"] = (outcome, reason)
    dataset = f"broken-{outcome.lower()}"
    drop_dataset(pipeline, dataset, splits=("train", "valid"), seed=4)
    (training,) = jobs_of(stack, dataset, "training")
    assert training["status"] == outcome and reason in training["reason"]
    assert stack.state.get(f"dataset#{dataset}")["training_status"] == outcome
    assert not [r for r in stack.state.query("models", "model#") if r["dataset"] == dataset]
    (alert,) = [a for a in alerts() if dataset in a["Message"]]
    assert outcome.lower() in alert["Subject"] and reason in alert["Message"]


def test_a_failed_test_transform_marks_the_model_and_alerts(stack, pipeline, alerts):
    alerts()
    stack.sagemaker.outcome_next["TransformJob"] = ("Failed", "ClientError: an input image could not be read")
    drop_dataset(pipeline, "bad-transform", seed=5)
    model = model_of(stack, "bad-transform")
    assert model["status"] == "evaluation failed" and "could not be read" in model["failure_reason"]
    assert "decision" not in model
    assert any("bad-transform" in a["Message"] for a in alerts())


@pytest.mark.parametrize(
    ("job", "reaches_the_function"),
    [("someone-elses-job", False), ("pcam-lookalike-train-0000000000", True)],
    ids=["filtered-by-the-rule", "ignored-by-the-function"],
)
def test_events_for_jobs_the_pipeline_did_not_start_are_ignored(stack, pipeline, alerts, job, reaches_the_function):
    alerts()

    def flow_invocations() -> int:  # with this event (the scheduled tick invokes the function too)
        return sum(
            i.function == "SageMakerFlowFunction" and any(job in body for body in i.bodies)
            for i in stack.runtime.invocations
        )

    before = flow_invocations()
    detail = {"TrainingJobName": job, "TrainingJobStatus": "Failed", "FailureReason": "not ours"}
    entry = {
        "Source": "aws.sagemaker",
        "DetailType": "SageMaker Training Job State Change",
        "Detail": json.dumps(detail),
    }
    stack._session.client("events", endpoint_url=stack.endpoint).put_events(Entries=[entry])
    pipeline.settle()
    assert (flow_invocations() > before) is reaches_the_function
    assert stack.state.get(f"job#{job}") is None
    assert not alerts() and not any(stack.dead_letters().values())


def test_operators_list_promote_and_roll_back_models(stack, pipeline, monkeypatch, capsys):
    for name, value in stack.environment().items():
        monkeypatch.setenv(name, value)
    registry_before = current_model(stack)
    waiting = model_of(stack, "noise")["model_name"]

    assert main(["models", "--stack", "pcam-local", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["current"]["model_name"] == registry_before["model_name"]
    assert waiting in {m["model_name"] for m in listed["models"]}

    assert main(["promote", waiting, "--stack", "pcam-local", "--by", "dr-ops", "--reason", "trial"]) == 0
    current = current_model(stack)
    assert (current["model_name"], current["promoted_by"], current["reason"]) == (waiting, "dr-ops", "trial")
    assert main(["promote", "no-such-model", "--stack", "pcam-local"]) == 1, "refused: a problem, not a usage error"
    refused = capsys.readouterr()
    assert "no model named" in refused.err and "no model named" not in refused.out, "errors go to stderr"
    assert main(["models", "--stack", "no-such-stack"]) == 3, "an unreachable stack has its own exit code"

    assert main(["rollback", "--stack", "pcam-local", "--by", "dr-ops"]) == 0
    assert current_model(stack)["model_name"] == registry_before["model_name"]
    history = stack.state.query("models", "history#")
    assert [h["action"] for h in history][-2:] == ["promoted by hand", "rolled back"]
    assert all(h["by"] == "dr-ops" for h in history[-2:])

"""The SageMaker flow and slide scoring, once per port call with that call failing once (tests/fault_harness.py):
each path ends as its run without faults. Then a superseded training's late failure interleaved with the newer
training's start at every step."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from pcam_evaluation_job.evaluate_model import evaluate
from pcam_pipeline.aws import events
from pcam_pipeline.aws.observability import metrics
from pcam_pipeline.core import keys
from pcam_pipeline.core.dropped_files import DroppedFile
from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.core.statuses import JobStatus
from pcam_pipeline.state import dataset_pk, split_pk
from pcam_pipeline.wsi.staging_jobs import STAGING_WANTED, WANTED_FILE, StagingWanted
from pcam_pipeline.wsi.structure import SlideLimits
from tests.fakes import flow_on_fakes, model_settings
from tests.fault_harness import Run, check_like_the_run_without_faults, outcome_of
from tests.faults import Faults
from tests.unit.test_fault_injection_ingestion import interleaved
from tests.unit.test_sagemaker_flow import make_ready, sagemaker_event, train_and_promote, write_outputs


# ------------------------------------------------------------------ the SageMaker flow and scoring
class FlowScenario:
    """The model side on fakes: ``steps`` are the events delivered, each a function of the world (SageMaker's
    events name jobs the flow started); set-up between them (a job's outputs) is not counted."""

    def __init__(
        self,
        faults: Faults,
        sagemaker: dict[str, Any] | None = None,
        duplicate_before: int | None = None,
        **settings: Any,
    ):
        chosen = dataclasses.replace(model_settings(0.5, **(sagemaker or {})), **settings)
        self.world = flow_on_fakes(chosen, faults=faults)
        self.faults = faults
        self.run = Run(self.world, faults, duplicate_before=duplicate_before)

    def event(self, detail_type: str, detail: dict[str, Any], delivery: str) -> None:
        # A copy handled at once has another id: one with the same id waits for the first (the idempotency layer).
        def handle(_: int) -> Any:
            return self.world.flow.on_event(detail_type, detail, f"{delivery} (copy)" if self.run.copying else delivery)

        self.run.deliver(delivery, handle)

    def split_ready(self, split: str, token: str = "") -> None:
        fields = {"kind": "split", "dataset": "ds", "split": split}
        with self.paused():
            make_ready(self.world.state, split_pk("ds", split), fields, 6, token or f"ds-{split}")
        self.event(events.SPLIT_READY, {"dataset": "ds", "split": split}, f"ready {split} {token}")

    def job_ended(self, kind: JobKind, status: str = "Completed", name: str = "", **extra: Any) -> None:
        name = name or self.world.launcher.names(kind)[-1]
        self.event(*sagemaker_event(kind, name, status, **extra), f"{name} {status}")

    def paused(self):
        """Set-up the test does (what a SageMaker job writes): not a call of the pipeline's."""
        faults = self.faults

        class Paused:
            def __enter__(self):
                self.was, faults._armed = faults._armed, False

            def __exit__(self, *exc):
                faults._armed = self.was

        return Paused()

    def metrics_written(self) -> None:
        with self.paused():
            model = self.world.state.models()[-1].model_name
            perfect = evaluate(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]))
            self.world.blobs.put_json(keys.evaluation_prefix(model) + "metrics.json", {**perfect, "dataset": "ds"})

    def outcome(self):
        w = self.world
        # What went back to ingestion (a slide staging job's end), once each: ingestion takes a repeat as the same.
        handed_back = sorted({body for body in w.ingest_queue.bodies})
        told = [("to ingestion", json.loads(body)["detail"]) for body in handed_back]
        return outcome_of(w.table, w.blobs, w.publisher.published + told, set(w.launcher.started), 0)


def trained_and_scored_for_evaluation(s: FlowScenario) -> None:
    """Three splits ready, a model trained, its test and validation splits scored."""
    for split in ("train", "valid", "test"):
        s.split_ready(split)
    s.job_ended(JobKind.TRAINING)
    s.job_ended(JobKind.TEST_TRANSFORM)
    s.job_ended(JobKind.VALIDATION_TRANSFORM)


def trained_evaluated_and_promoted(s: FlowScenario) -> None:
    trained_and_scored_for_evaluation(s)
    s.metrics_written()
    s.job_ended(JobKind.EVALUATION)


def a_model_trained_evaluated_promoted_and_a_slide_scored(s: FlowScenario) -> None:
    trained_evaluated_and_promoted(s)
    slide_ready(s, "s1")
    with s.paused():
        write_outputs(s.world, s.world.launcher.names(JobKind.SLIDE_SCORING)[-1], [0.1, 0.9, 0.2])
    s.job_ended(JobKind.SLIDE_SCORING)


def a_test_split_replaced_while_its_transform_waits_for_capacity(s: FlowScenario) -> None:
    for split in ("train", "valid", "test"):
        s.split_ready(split)
    s.world.launcher.capacity_refusals = 1_000  # no capacity until the tick, however often the event is retried
    s.job_ended(JobKind.TRAINING)
    s.split_ready("test", "ds-test-NEW")
    s.world.launcher.capacity_refusals = 0
    s.event(events.SCHEDULED_TICK, {}, "tick")
    s.job_ended(JobKind.TEST_TRANSFORM)


def a_validation_transform_and_an_evaluation_that_wait_for_capacity(s: FlowScenario) -> None:
    for split in ("train", "valid", "test"):
        s.split_ready(split)
    s.job_ended(JobKind.TRAINING)
    s.world.launcher.capacity_refusals = 1_000  # the validation transform waits for the tick
    s.job_ended(JobKind.TEST_TRANSFORM)
    s.world.launcher.capacity_refusals = 0
    s.event(events.SCHEDULED_TICK, {}, "tick 1")
    s.world.launcher.capacity_refusals = 1_000  # then the evaluation waits
    s.job_ended(JobKind.VALIDATION_TRANSFORM)
    s.world.launcher.capacity_refusals = 0
    s.event(events.SCHEDULED_TICK, {}, "tick 2")
    s.metrics_written()
    s.job_ended(JobKind.EVALUATION)


def a_superseded_trainings_late_failure(s: FlowScenario) -> None:
    s.split_ready("train")
    s.split_ready("valid")
    older = s.world.launcher.names(JobKind.TRAINING)[-1]
    s.split_ready("train", "ds-train-2")
    s.job_ended(JobKind.TRAINING, "Failed", name=older, FailureReason="out of memory")
    s.job_ended(JobKind.TRAINING)


def a_promoted_model(s: FlowScenario) -> None:
    """Set-up: a model trained, evaluated and promoted, without faults."""
    with s.paused():
        train_and_promote(s.world)


def slide_ready(s: FlowScenario, slide_id: str, patches: int = 3) -> None:
    with s.paused():
        key = f"incoming/slides/{slide_id}.h5"
        s.world.state.record_file_received(key, "v1")
        fields = {"kind": "slide", "slide_id": slide_id, "x_key": key, "x_version": "v1"}
        make_ready(s.world.state, f"slide#{slide_id}", fields, patches, f"{slide_id}-r")
    s.event(events.SLIDE_READY, {"slide_id": slide_id, "run_id": f"{slide_id}-r"}, f"slide ready {slide_id}")


def minutes_pass(s: FlowScenario) -> None:
    """The next scheduled tick, once any dispatch lease a failed release left has expired (2 minutes): the
    slides it kept waiting are dispatched then, not lost."""
    with s.paused():
        lease = s.world.table.get("transform-slots", "dispatcher")
        if lease and lease.get("holder"):
            s.world.table._items[("transform-slots", "dispatcher")]["until"] = "2000-01-01T00:00:00.000+00:00"
    s.event(events.SCHEDULED_TICK, {}, f"tick {len(s.run.deliveries)}")


def scored(s: FlowScenario, slide_id: str, status: str = "Completed") -> None:
    minutes_pass(s)
    with s.paused():
        job = s.world.state.slide(slide_id).scoring_job
        if status == "Completed":
            for member in s.world.state.job(job).slides:
                write_outputs(s.world, job, [0.2] * member["patch_count"], member["slide_id"])
    s.job_ended(JobKind.SLIDE_SCORING, status, name=job)


def a_failed_batch_of_two_slides_scored_again_alone(s: FlowScenario) -> None:
    a_promoted_model(s)
    for slide_id in ("x", "a", "b"):  # one slot: x runs while a and b queue, then share a job
        slide_ready(s, slide_id)
    scored(s, "x")
    scored(s, "a", status="Failed")  # the batch of a and b: each is queued again, alone
    scored(s, "a")
    scored(s, "b")


def an_evaluation_that_left_no_metrics(s: FlowScenario) -> None:
    trained_and_scored_for_evaluation(s)
    s.job_ended(JobKind.EVALUATION)  # no metrics.json: the model's evaluation fails, alerted once


def a_slide_waiting_for_a_model_scored_once_one_is_promoted(s: FlowScenario) -> None:
    slide_ready(s, "w")  # no model yet: it waits
    trained_evaluated_and_promoted(s)
    with s.paused():
        (promoted,) = s.world.publisher.of_type(events.MODEL_PROMOTED)[-1:]
    s.event(events.MODEL_PROMOTED, promoted, "model promoted")  # the bus delivers it back to the flow
    scored(s, "w")


def a_tuning_job_whose_best_trial_becomes_the_model(s: FlowScenario) -> None:
    s.split_ready("train")
    s.split_ready("valid")
    with s.paused():
        (tuning,) = s.world.launcher.names(JobKind.TUNING)
        s.world.launcher.best_of_tuning[tuning] = f"{tuning}-002-abc"
    detail = {"HyperParameterTuningJobName": tuning, "HyperParameterTuningJobStatus": "Completed"}
    s.event("SageMaker HyperParameter Tuning Job State Change", detail, f"{tuning} Completed")


def a_large_slide_staged_by_a_job_that_waits_for_capacity(s: FlowScenario) -> None:
    upload = DroppedFile("data", "incoming/slides/big.ndpi", "v1", "e1")
    asked = StagingWanted.of(upload, "big", 20 << 30, None, 0.972, SlideLimits())
    with s.paused():
        s.world.blobs.put_json(asked.prefix + WANTED_FILE, asked.to_json())
        s.world.launcher.capacity_refusals = 1
    s.event(STAGING_WANTED, {"prefix": asked.prefix, "slide_id": "big"}, "staging wanted")
    s.event(events.SCHEDULED_TICK, {}, "tick")
    s.job_ended(JobKind.SLIDE_STAGING)


FLOWS = {
    "a large slide staged by a job that waits for capacity": a_large_slide_staged_by_a_job_that_waits_for_capacity,
    "a slide waiting for a model, scored once one is promoted": a_slide_waiting_for_a_model_scored_once_one_is_promoted,
    "a tuning job whose best trial becomes the model": a_tuning_job_whose_best_trial_becomes_the_model,
    "a failed batch of two slides scored again alone": a_failed_batch_of_two_slides_scored_again_alone,
    "an evaluation that left no metrics": an_evaluation_that_left_no_metrics,
    "a model trained, evaluated, promoted, and a slide scored": a_model_trained_evaluated_promoted_and_a_slide_scored,
    "a test split replaced while its transform waits for capacity": a_test_split_replaced_while_its_transform_waits_for_capacity,  # noqa: E501
    "a superseded training's late failure": a_superseded_trainings_late_failure,
    "a validation transform and an evaluation that wait for capacity": (
        a_validation_transform_and_an_evaluation_that_wait_for_capacity
    ),
}


SETTINGS = {
    "a failed batch of two slides scored again alone": {"max_transform_jobs": 1},
    "a tuning job whose best trial becomes the model": {"sagemaker": {"tuning_max_jobs": 3}},
}


def flow_run(path: Callable[[FlowScenario], None], faults: Faults, name: str = "", duplicate_before: int | None = None):
    metrics.clear_metrics()
    scenario = FlowScenario(faults, duplicate_before=duplicate_before, **SETTINGS.get(name, {}))
    with faults.armed():
        path(scenario)
    return scenario.outcome()


@pytest.mark.parametrize("name", FLOWS)
def test_the_sagemaker_flow_ends_the_same_whichever_call_fails_once(name):
    counting = Faults()
    expected = flow_run(FLOWS[name], counting, name)
    assert counting.calls, "the path made no port call"
    for n in range(1, len(counting.calls) + 1):
        faults = Faults(fail_at=n)
        check_like_the_run_without_faults(expected, flow_run(FLOWS[name], faults, name), faults)


@pytest.mark.parametrize("name", FLOWS)
def test_the_sagemaker_flow_ends_the_same_when_an_event_is_delivered_again_at_any_step(name):
    """Each event handled up to a port call, then a copy of it (published again: another id) handled whole,
    then the first goes on: every event the flow publishes still once, and the same end as one delivery."""
    counting = Faults()
    expected = flow_run(FLOWS[name], counting, name)
    for n in range(1, len(counting.calls) + 1):
        faults = Faults()
        got = flow_run(FLOWS[name], faults, name, duplicate_before=n)
        assert faults.duplicated, f"no event was being handled at call {n}"
        check_like_the_run_without_faults(expected, got, faults, f"with {faults.duplicated}")


def test_a_copy_handled_meanwhile_never_leaves_a_failed_announcement_unfinished():
    """A copy of an event handled while the first delivery holds an announcement, then a call of the first one
    fails within the next few: the first's retry still finishes what it holds (a promotion, a slide's results)."""
    name = "a model trained, evaluated, promoted, and a slide scored"
    counting = Faults()
    expected = flow_run(FLOWS[name], counting, name)
    for n in range(1, len(counting.calls) + 1):
        for m in range(n + 1, min(n + 7, len(counting.calls) + 1)):  # at n the fault precedes the copy
            faults = Faults(fail_at=m)
            got = flow_run(FLOWS[name], faults, name, duplicate_before=n)
            assert faults.duplicated, f"no event was being handled at call {n}"
            check_like_the_run_without_faults(expected, got, faults, f"with {faults.duplicated}, call {m} failing")


# ------------------------------------------------------------------ two deliveries, interleaved at every step
def test_a_late_failure_never_hides_the_newer_training_whatever_step_it_arrives_at():
    def world_with_two_trainings(faults):
        world = flow_on_fakes(model_settings(), faults=faults)
        make_ready(world.state, split_pk("ds", "valid"), {"kind": "split", "dataset": "ds", "split": "valid"}, 6, "v")
        make_ready(world.state, split_pk("ds", "train"), {"kind": "split", "dataset": "ds", "split": "train"}, 6, "t")
        world.flow.on_event(events.SPLIT_READY, {"dataset": "ds", "split": "train"})
        make_ready(world.state, split_pk("ds", "train"), {"kind": "split", "dataset": "ds", "split": "train"}, 8, "t2")
        return world

    def newer_training_starts(world):
        return lambda: world.flow.on_event(events.SPLIT_READY, {"dataset": "ds", "split": "train"})

    counting = Faults()
    world = world_with_two_trainings(counting)
    with counting.armed():
        newer_training_starts(world)()
    for at in range(1, len(counting.calls) + 1):
        faults = Faults()
        world = world_with_two_trainings(faults)
        older = world.launcher.names(JobKind.TRAINING)[0]
        late_failure = sagemaker_event(JobKind.TRAINING, older, "Failed", FailureReason="out of memory")
        interleaved(newer_training_starts(world), lambda w=world, e=late_failure: w.flow.on_event(*e), faults, at)
        newer = world.launcher.names(JobKind.TRAINING)[-1]
        dataset = world.state.get(dataset_pk("ds"))
        assert newer != older and dataset["latest_job"] == newer, at
        assert dataset["training_status"] == JobStatus.STARTING and "failure_reason" not in dataset, at

"""Every path, once per port call, with that call failing once: the retries end exactly as a run without faults
(tests/fault_harness.py says what "exactly" means). Then two deliveries interleaved at every step, for the
"newest wins" and late-event paths."""

from __future__ import annotations

import gzip
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import numpy as np
import pytest

from pcam_evaluation_job.evaluate_model import evaluate
from pcam_pipeline.aws import events
from pcam_pipeline.aws.observability import metrics
from pcam_pipeline.core import keys
from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.core.statuses import FileStatus, JobStatus
from pcam_pipeline.state import dataset_pk, split_pk
from tests.fakes import flow_on_fakes, model_settings
from tests.fault_harness import (
    Run,
    check_like_the_run_without_faults,
    convert_all,
    ingest_message,
    outcome_of,
    s3_event,
)
from tests.faults import Faults
from tests.lab import h5_bytes, make_lab
from tests.unit.test_damaged_files import damaged_chunk
from tests.unit.test_sagemaker_flow import make_ready, write_outputs

PATCHES = np.random.default_rng(3).integers(0, 255, (5, 96, 96, 3), dtype=np.uint8)
LABELS = np.array([0, 1, 0, 1, 1], np.uint8).reshape(5, 1, 1, 1)
TRAIN_X = "incoming/datasets/ds/camelyonpatch_level_2_split_train_x.h5"
TRAIN_Y = "incoming/datasets/ds/camelyonpatch_level_2_split_train_y.h5"


def zip_with_a_dot_entry() -> bytes:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr(".", b"x")
        bundle.writestr("s.mrxs", b"m")
    return buffer.getvalue()


# ------------------------------------------------------------------ ingestion and conversion
@dataclass(frozen=True)
class Drops:
    """Uploads made before the run, then delivered as their S3 events, then every shard converted."""

    uploads: tuple[tuple[str, Callable[[], bytes]], ...]
    ignored: bool = False  # not a lab's file: no call, no record, no event

    def world(self, faults: Faults) -> tuple[Any, Callable[[Run], None]]:
        lab = make_lab(faults=faults)
        dropped = [lab.drop(key, body()) for key, body in self.uploads]

        def run(run: Run) -> None:
            for upload in dropped:
                ingest_message(run, lab, s3_event(upload.key, upload.version_id, upload.etag))
            convert_all(run, lab)

        return lab, run


INGESTION = {
    "an HDF5 slide": Drops((("incoming/slides/s1.h5", lambda: h5_bytes(x=PATCHES)),)),
    "a gzipped HDF5 slide": Drops((("incoming/slides/s2.h5.gz", lambda: gzip.compress(h5_bytes(x=PATCHES))),)),
    "a split's images and labels": Drops(((TRAIN_X, lambda: h5_bytes(x=PATCHES)),
                                          (TRAIN_Y, lambda: h5_bytes(y=LABELS)))),
    "a file that is not HDF5": Drops((("incoming/slides/bad.h5", lambda: b"not an hdf5 file"),)),
    "a file damaged inside": Drops((("incoming/slides/s9.h5", lambda: damaged_chunk(1, count=3)),)),
    "a zip with an entry named '.'": Drops((("incoming/slides/z.zip", zip_with_a_dot_entry),)),
    "a folder marker and .DS_Store": Drops((("incoming/slides/", bytes), ("incoming/slides/.DS_Store", bytes)), True),
}  # fmt: skip


def lab_outcome(lab: Any, drops: int):
    return outcome_of(lab.table, lab.blobs, lab.publisher.published, set(), drops)


def ingestion_run(scenario: Drops, faults: Faults):
    metrics.clear_metrics()  # one invocation's worth: Powertools flushes (and needs a namespace) at 100
    lab, run = scenario.world(faults)
    drops = lab.blobs._written  # version ids up to here are the lab's uploads
    with faults.armed():
        run(Run(lab, faults))
    return lab_outcome(lab, drops)


@pytest.mark.parametrize("name", INGESTION)
def test_ingestion_and_conversion_end_the_same_whichever_call_fails_once(name):
    scenario = INGESTION[name]
    counting = Faults()
    expected = ingestion_run(scenario, counting)
    if scenario.ignored:
        assert counting.calls == [] and not expected.events and expected.state == []
    assert counting.calls or scenario.ignored, "the path made no port call"
    for n in range(1, len(counting.calls) + 1):
        faults = Faults(fail_at=n)
        check_like_the_run_without_faults(expected, ingestion_run(scenario, faults), faults)


# ------------------------------------------------------------------ the SageMaker flow and scoring
def sagemaker_event(kind: JobKind, name: str, status: str, **extra: Any) -> tuple[str, dict[str, Any]]:
    resource, name_field, status_field = {
        JobKind.TRAINING: ("Training", "TrainingJobName", "TrainingJobStatus"),
        JobKind.TEST_TRANSFORM: ("Transform", "TransformJobName", "TransformJobStatus"),
        JobKind.SLIDE_SCORING: ("Transform", "TransformJobName", "TransformJobStatus"),
        JobKind.EVALUATION: ("Processing", "ProcessingJobName", "ProcessingJobStatus"),
    }[kind]
    return f"SageMaker {resource} Job State Change", {name_field: name, status_field: status, **extra}


class FlowScenario:
    """The model side on fakes: ``steps`` are the events delivered, each a function of the world (SageMaker's
    events name jobs the flow started); set-up between them (a job's outputs) is not counted."""

    def __init__(self, faults: Faults):
        self.world = flow_on_fakes(model_settings(minimum_auc=0.5), faults=faults)
        self.faults = faults
        self.run = Run(self.world, faults)

    def event(self, detail_type: str, detail: dict[str, Any], delivery: str) -> None:
        self.run.deliver(delivery, lambda _: self.world.flow.on_event(detail_type, detail, delivery))

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
        return outcome_of(w.table, w.blobs, w.publisher.published, set(w.launcher.started), 0)


def a_model_trained_evaluated_promoted_and_a_slide_scored(s: FlowScenario) -> None:
    for split in ("train", "valid", "test"):
        s.split_ready(split)
    s.job_ended(JobKind.TRAINING)
    s.job_ended(JobKind.TEST_TRANSFORM)
    s.metrics_written()
    s.job_ended(JobKind.EVALUATION)
    with s.paused():
        s.world.state.record_file_received("incoming/slides/s1.h5", "v1")
        fields = {"kind": "slide", "slide_id": "s1", "x_key": "incoming/slides/s1.h5", "x_version": "v1"}
        make_ready(s.world.state, "slide#s1", fields, 3, "s1-r")
    s.event(events.SLIDE_READY, {"slide_id": "s1", "run_id": "s1-r"}, "slide ready s1")
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


def a_superseded_trainings_late_failure(s: FlowScenario) -> None:
    s.split_ready("train")
    s.split_ready("valid")
    older = s.world.launcher.names(JobKind.TRAINING)[-1]
    s.split_ready("train", "ds-train-2")
    s.job_ended(JobKind.TRAINING, "Failed", name=older, FailureReason="out of memory")
    s.job_ended(JobKind.TRAINING)


FLOWS = {
    "a model trained, evaluated, promoted, and a slide scored": a_model_trained_evaluated_promoted_and_a_slide_scored,
    "a test split replaced while its transform waits for capacity": a_test_split_replaced_while_its_transform_waits_for_capacity,  # noqa: E501
    "a superseded training's late failure": a_superseded_trainings_late_failure,
}


def flow_run(path: Callable[[FlowScenario], None], faults: Faults):
    metrics.clear_metrics()
    scenario = FlowScenario(faults)
    with faults.armed():
        path(scenario)
    return scenario.outcome()


@pytest.mark.parametrize("name", FLOWS)
def test_the_sagemaker_flow_ends_the_same_whichever_call_fails_once(name):
    counting = Faults()
    expected = flow_run(FLOWS[name], counting)
    assert counting.calls, "the path made no port call"
    for n in range(1, len(counting.calls) + 1):
        faults = Faults(fail_at=n)
        check_like_the_run_without_faults(expected, flow_run(FLOWS[name], faults), faults)


# ------------------------------------------------------------------ two deliveries, interleaved at every step
def interleaved(first: Callable[[], Any], second: Callable[[], Any], faults: Faults, at: int) -> None:
    """Run ``first``; at its ``at``-th port call, run ``second`` whole, then let ``first`` go on."""
    pending = [second]

    def before(call: str, real=faults.before) -> None:
        real(call)
        if pending and len(faults.calls) == at:
            faults._armed = False
            pending.pop()()
            faults._armed = True

    faults.before = before
    with faults.armed():
        first()


def test_an_older_upload_never_wins_whatever_step_the_newer_one_arrives_at():
    counting = Faults()
    lab = make_lab(faults=counting)
    older = lab.drop("incoming/slides/s.h5", h5_bytes(x=PATCHES[:2]))
    with counting.armed():
        lab.ingestor.ingest(older)
    for at in range(1, len(counting.calls) + 1):
        faults = Faults()
        lab = make_lab(faults=faults)
        older = lab.drop("incoming/slides/s.h5", h5_bytes(x=PATCHES[:2]))

        def newer_arrives(lab=lab):
            newer = lab.drop("incoming/slides/s.h5", h5_bytes(x=PATCHES))
            lab.ingestor.ingest(newer)

        interleaved(lambda lab=lab, older=older: lab.ingestor.ingest(older), newer_arrives, faults, at)
        lab.convert_all()
        slide = lab.state.slide("s")
        assert slide.x_version == lab.blobs.latest_version("incoming/slides/s.h5") and slide.x_count == 5, at
        (ready,) = lab.publisher.of_type("Slide Ready")
        assert ready["input_version"] == slide.x_version and ready["patch_count"] == 5, at
        # Refused at planning, or planned before the newer one and then replaced: never converted.
        assert lab.state.file_version(older.key, older.version).status is not FileStatus.CONVERTED, at


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

"""Every event the pipeline publishes conforms to its JSON Schema in docs/integrators.md."""

import numpy as np
import pytest

from pcam_pipeline.aws import events
from pcam_pipeline.core.dropped_files import DroppedFile
from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.records import SplitRecord
from pcam_pipeline.ingestion.completion import Completer
from pcam_pipeline.ingestion.quarantine import quarantine
from pcam_pipeline.state import slide_pk, split_pk
from tests.event_contracts import PAGE, contract_violations, documented_schemas, schema_files, versioned_schemas
from tests.fakes import InMemoryBlobStore, RecordingPublisher, in_memory_state
from tests.unit.test_sagemaker_flow import (
    JobKind,
    job_event,
    make_world,
    slide_ready,
    split_ready,
    train_and_promote,
    write_outputs,
)

EVENT_TYPES = [
    events.SPLIT_READY,
    events.SLIDE_READY,
    events.MODEL_EVALUATED,
    events.MODEL_PROMOTED,
    events.SLIDE_SCORED,
    events.FILE_QUARANTINED,
    events.SLIDE_SCORING_FAILED,
    events.MODEL_FAILED,
]


def test_every_event_type_has_a_valid_versioned_schema_file_that_the_page_links():
    assert sorted(documented_schemas()) == sorted(EVENT_TYPES)
    page = PAGE.read_text()
    for path, schema in schema_files().items():
        event, version = path.name.removesuffix(".json").rsplit(".v", 1)
        assert schema["$id"] == f"urn:pcam-pipeline:events:{event}:v{version}", path.name
        assert event == schema["title"].lower().replace(" ", "-"), "the file is named for its detail type"
        assert f"(../schemas/events/{path.name})" in page, f"docs/integrators.md links {path.name}"


def published_by_the_model_side() -> list[tuple[str, dict]]:
    world = make_world()
    slide_ready(world)
    train_and_promote(world)
    world.flow.on_event(events.MODEL_PROMOTED, {})
    (name,) = world.launcher.names(JobKind.SLIDE_SCORING)
    write_outputs(world, name, np.linspace(0, 1, 6))
    world.flow.on_event(
        "SageMaker Transform Job State Change", {"TransformJobName": name, "TransformJobStatus": "Completed"}
    )
    slide_ready(world, "labs/lab-a/doomed")  # scored alone: its job fails
    (doomed,) = [n for n in world.launcher.names(JobKind.SLIDE_SCORING) if n != name]
    world.flow.on_event(
        "SageMaker Transform Job State Change",
        {"TransformJobName": doomed, "TransformJobStatus": "Failed", "FailureReason": "AlgorithmError: oom"},
    )
    failing = make_world()
    split_ready(failing, "train")
    split_ready(failing, "valid")
    job_event(failing, JobKind.TRAINING, "Failed", FailureReason="ResourceLimitExceeded")
    return world.publisher.published + failing.publisher.published


def published_by_ingestion() -> list[tuple[str, dict]]:
    blobs = InMemoryBlobStore("data")
    labels = "manifests/ds/train/labels-r.npy"
    blobs.put_array(labels, np.array([0, 1, 1], dtype=np.uint8))
    state, publisher = in_memory_state(), RecordingPublisher()
    split = {"kind": "split", "dataset": "ds", "split": "train", "x_key": "incoming/datasets/ds/train_x.h5",
             "x_version": "v1", "y_key": "incoming/datasets/ds/train_y.h5", "y_version": "v2",
             "y_labels_key": labels, "y_count": 3}  # fmt: skip
    slide = {"kind": "slide", "slide_id": "s 1", "x_key": "incoming/slides/s 1.h5", "x_version": "v3",
             "x_source_key": "incoming/slides/s 1.h5", "has_coords": True,
             "coords_key": "tiling/s 1/r/coords.npy"}  # fmt: skip
    for owner, fields in ((split_pk("ds", "train"), split), (slide_pk("s 1"), slide)):
        state.start_patch_conversion(
            owner,
            {**fields, "x_run": "r", "x_count": 3, "shards_total": 1, "image_prefix": "images/x/", "image_edge": 96},
            as_read=SplitRecord(),
        )
        state.record_shard_done(owner, "r", 0)
        assert Completer(blobs, state, publisher).complete_if_ready(owner, "claimer")
    bad = "incoming/labs/lab-a/slides/bad.h5"
    version = blobs.put_bytes(bad, b"not hdf5", "")
    problem = InvalidInput("the file is not an HDF5 file", "an HDF5 file", "b'not hdf5'")
    quarantine(blobs, state, publisher, DroppedFile("data", bad, version, etag="e"), problem)
    return publisher.published


@pytest.fixture
def published():
    return published_by_the_model_side() + published_by_ingestion()


def test_the_events_the_code_publishes_match_their_documented_schemas(published):
    assert {event for event, _ in published} == set(EVENT_TYPES)
    for event, detail in published:
        for detail_type, body in events.versioned_entries(event, detail):
            assert contract_violations(detail_type, body) == [], detail_type


def test_each_event_is_published_as_its_newest_version_and_as_version_1_until_it_is_retired():
    for event in EVENT_TYPES:
        newest = max(version for (name, version) in versioned_schemas() if name == event)
        assert events.SCHEMA_VERSIONS[event] == newest, f"{event}: the code publishes the newest schema"
    detail = {"slide_id": "s", "verdict": {"category": "negative"}, "report_uri": "s3://d/r.html"}
    (v2, body2), (v1, body1) = events.versioned_entries(events.SLIDE_SCORED, detail)
    assert (v2, body2["schema_version"], body2["verdict"]) == ("Slide Scored v2", 2, {"category": "negative"})
    assert (v1, "schema_version" in body1, "verdict" in body1, "report_uri" in body1) == (
        "Slide Scored",
        False,
        False,
        False,
    )
    assert [t for t, _ in events.versioned_entries(events.SLIDE_SCORED, detail, with_v1=False)] == ["Slide Scored v2"]
    assert events.event_of("Slide Scored v2") == events.event_of("Slide Scored") == "Slide Scored"


def test_a_drifting_event_is_caught(published):
    detail = next(detail for event, detail in published if event == events.SLIDE_SCORED)
    assert contract_violations("Slide Scored v2", detail) == []
    assert contract_violations("Slide Scored v2", {**detail, "undocumented": 1})
    assert contract_violations("Slide Scored v2", {k: v for k, v in detail.items() if k != "csv_uri"})
    assert contract_violations("Slide Scored v2", {k: v for k, v in detail.items() if k != "schema_version"})
    assert contract_violations("Slide Scored", detail), "version 1 has no verdict"


def test_failures_are_announced_with_whose_they_are_and_why(published):
    (quarantined,) = [d for t, d in published if t == events.FILE_QUARANTINED]
    assert (quarantined["lab"], quarantined["problem"]) == ("lab-a", "the file is not an HDF5 file")
    assert quarantined["error_uri"] == "s3://data/quarantine/incoming/labs/lab-a/slides/bad.h5.error.json"
    (failed,) = [d for t, d in published if t == events.SLIDE_SCORING_FAILED]
    assert (failed["slide_id"], failed["lab"]) == ("labs/lab-a/doomed", "lab-a") and "oom" in failed["reason"]
    (model,) = [d for t, d in published if t == events.MODEL_FAILED]
    assert (model["stage"], model["status"], model["lab"]) == ("training", "Failed", None)

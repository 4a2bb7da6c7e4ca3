"""The one announcement of a split or slide (ingestion/completion.py), on the fakes: the manifest is written
whole, the owner is marked ready before its event, and a second delivery announces nothing."""

import json

import numpy as np

from pcam_pipeline.aws import events
from pcam_pipeline.aws.blob_store import array_bytes
from pcam_pipeline.core.records import SplitRecord
from pcam_pipeline.ingestion.completion import Completer
from pcam_pipeline.state import slide_pk, split_pk
from tests.fakes import InMemoryBlobStore, RecordingPublisher, in_memory_state


def converted(state, owner: str, **fields) -> None:
    images = {"x_run": "r1", "x_count": 3, "shards_total": 1, "image_prefix": "images/p/", "image_edge": 96}
    state.start_patch_conversion(owner, {**fields, **images}, as_read=SplitRecord())
    state.record_shard_done(owner, "r1", 0)


def test_a_split_with_its_labels_is_announced_once_with_a_training_manifest():
    state, blobs, publisher = in_memory_state(), InMemoryBlobStore("data"), RecordingPublisher()
    blobs.put_bytes("labels.npy", array_bytes(np.array([0, 1, 1], dtype=np.uint8)), "application/octet-stream")
    owner = split_pk("ds", "train")
    converted(state, owner, kind="split", dataset="ds", split="train", x_key="incoming/datasets/ds/train_x.h5",
              x_version="vx", y_key="incoming/datasets/ds/train_y.h5", y_version="vy", y_labels_key="labels.npy",
              y_count=3)  # fmt: skip
    completer = Completer(blobs, state, publisher)

    assert completer.complete_if_ready(owner, "shard 0")
    assert not completer.complete_if_ready(owner, "shard 0 again, another delivery")

    (detail,) = publisher.of_type(events.SPLIT_READY)
    lines = [json.loads(line) for line in blobs.get_bytes(detail["manifest_key"]).decode().splitlines()]
    assert [line["class"] for line in lines] == ["0", "1", "1"]  # as the algorithm reads labels
    assert lines[2]["source-ref"].startswith("s3://data/images/p/")
    assert (detail["patch_count"], detail["tumour_count"]) == (3, 2)
    assert state.split("ds", "train").ready


def test_a_slide_is_announced_with_a_transform_manifest_of_its_patches_in_order():
    state, blobs, publisher = in_memory_state(), InMemoryBlobStore("data"), RecordingPublisher()
    owner = slide_pk("s1")
    converted(state, owner, kind="slide", slide_id="s1", x_key="incoming/slides/s1.h5", x_version="v1")

    assert Completer(blobs, state, publisher).complete_if_ready(owner, "shard 0")

    (detail,) = publisher.of_type(events.SLIDE_READY)
    prefix, *names = json.loads(blobs.get_bytes(detail["manifest_key"]))
    assert prefix == {"prefix": "s3://data/images/p/"} and len(names) == 3
    assert state.slide("s1").ready


def test_images_and_labels_that_disagree_in_number_fail_the_split_and_announce_nothing():
    state, blobs, publisher = in_memory_state(), InMemoryBlobStore("data"), RecordingPublisher()
    owner = split_pk("ds", "valid")
    converted(state, owner, kind="split", dataset="ds", split="valid", x_key="x.h5", x_version="vx",
              y_key="y.h5", y_version="vy", y_labels_key="labels.npy", y_count=4)  # fmt: skip

    assert not Completer(blobs, state, publisher).complete_if_ready(owner, "shard 0")
    assert publisher.published == []
    assert "images (3) and labels (4) disagree" in state.split("ds", "valid").failure

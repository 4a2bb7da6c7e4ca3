"""Ingestion through the local stack: drops become JPEGs, manifests and exactly one ready event."""

import gzip
import io

import numpy as np
from PIL import Image

from tests.integration.conftest import INTEGRATION
from tests.lab import h5_bytes

pytestmark = INTEGRATION

OFFICIAL = "camelyonpatch_level_2_split_{split}_{role}.h5"


def _drop_split(pipeline, dataset, split, x, y, order=("x", "y"), suffix=""):
    for role in order:
        body = h5_bytes(x=x) if role == "x" else h5_bytes(y=y.reshape(-1, 1, 1, 1))
        if suffix == ".gz":
            body = gzip.compress(body)
        pipeline.drop(f"incoming/datasets/{dataset}/{OFFICIAL.format(split=split, role=role)}{suffix}", body)
        pipeline.settle()


def _assert_split_converted(pipeline, dataset, split, x, y):
    bucket = pipeline.stack.bucket
    (event,) = pipeline.events_for("Split Ready", dataset=dataset, split=split)
    manifest = pipeline.lines(event["detail"]["manifest_key"])
    assert [int(r["class"]) for r in manifest] == y.tolist()
    for index in (0, len(x) // 2, len(x) - 1):
        key = manifest[index]["source-ref"].removeprefix(f"s3://{bucket}/")
        decoded = np.asarray(Image.open(io.BytesIO(pipeline.stack.read(key))))
        assert np.abs(decoded.astype(int) - x[index].astype(int)).mean() < 6, "patch order is kept"
    assert event["source"] == "pcam.pipeline"
    assert event["detail"]["patch_count"] == len(x)
    assert event["detail"]["tumour_count"] == int(y.sum())
    assert event["detail"]["manifest_uri"] == f"s3://{bucket}/{event['detail']['manifest_key']}"
    assert event["detail"]["manifest_key"].startswith(f"manifests/{dataset}/{split}/")
    assert event["detail"]["image_edge"] == 96


def test_a_dataset_split_becomes_jpegs_a_manifest_and_one_ready_event(pipeline, patches):
    x, y = patches
    _drop_split(pipeline, "full", "train", x, y)
    _assert_split_converted(pipeline, "full", "train", x, y)
    record = pipeline.owner_record("split#full/train")
    assert record["status"] == "ready" and record["shards_total"] == 4  # 50 patches, 16 per shard
    assert (
        pipeline.file_record(f"incoming/datasets/full/{OFFICIAL.format(split='train', role='x')}")["status"]
        == "converted"
    )


def test_labels_may_arrive_before_images(pipeline, patches):
    x, y = patches
    _drop_split(pipeline, "labels-first", "valid", x[:20], y[:20], order=("y", "x"))
    _assert_split_converted(pipeline, "labels-first", "valid", x[:20], y[:20])


def test_gzipped_official_downloads_are_converted_unchanged(pipeline, patches):
    x, y = patches
    _drop_split(pipeline, "gz", "test", x[:20], y[:20], suffix=".gz")
    _assert_split_converted(pipeline, "gz", "test", x[:20], y[:20])
    assert pipeline.stack.list_keys("staging/datasets/gz/"), "the decompressed copy is staged outside incoming/"


def test_keys_with_spaces_and_non_ascii_characters_work(pipeline, patches):
    x, y = patches
    _drop_split(pipeline, "Lab Ålborg 2", "train", x[:10], y[:10])
    _assert_split_converted(pipeline, "Lab Ålborg 2", "train", x[:10], y[:10])
    coords = np.arange(20).reshape(10, 2)
    pipeline.drop("incoming/slides/Patient 7 – nødé.h5", h5_bytes(x=x[:10], coords=coords))
    pipeline.settle()
    (event,) = pipeline.events_for("Slide Ready", slide_id="Patient 7 – nødé")
    assert event["detail"]["patch_count"] == 10


def test_keys_with_plus_signs_and_percent_signs_work(pipeline, patches):
    for slide_id in ("c++ 50% tumour", "a+b"):
        pipeline.drop(f"incoming/slides/{slide_id}.h5", h5_bytes(x=patches[0][:4]))
        pipeline.settle()
        (event,) = pipeline.events_for("Slide Ready", slide_id=slide_id)
        assert event["detail"]["input_key"] == f"incoming/slides/{slide_id}.h5"


def test_a_slide_gets_a_transform_manifest_of_its_patches_in_order(pipeline, patches):
    x, _ = patches
    coords = np.stack([np.arange(50) * 96, np.zeros(50, int)], axis=1)
    pipeline.drop("incoming/slides/slide-A.h5", h5_bytes(x=x, coords=coords))
    pipeline.settle()
    (event,) = pipeline.events_for("Slide Ready", slide_id="slide-A")
    manifest = pipeline.json(event["detail"]["manifest_key"])
    prefix = manifest[0]["prefix"]
    assert prefix == f"s3://{pipeline.stack.bucket}/{event['detail']['image_prefix']}"
    run = event["detail"]["run_id"]
    assert manifest[1:] == [f"{run}-{i:07d}.jpg" for i in range(50)], "base names unique in any scoring job"
    assert event["detail"]["has_coords"] is True
    last_key = event["detail"]["image_prefix"] + f"{run}-0000049.jpg"
    last = np.asarray(Image.open(io.BytesIO(pipeline.stack.read(last_key))))
    assert np.abs(last.astype(int) - x[49].astype(int)).mean() < 6


def test_a_slide_without_coords_is_fine(pipeline, patches):
    pipeline.drop("incoming/slides/no-coords.h5.gz", gzip.compress(h5_bytes(x=patches[0][:5])))
    pipeline.settle()
    (event,) = pipeline.events_for("Slide Ready", slide_id="no-coords")
    assert event["detail"]["has_coords"] is False


def test_duplicate_deliveries_do_no_duplicate_work(pipeline, patches):
    """S3 is at-least-once: replaying the same notifications changes nothing."""
    x, y = patches
    _drop_split(pipeline, "dupes", "train", x[:20], y[:20])
    images_before = pipeline.stack.list_keys("images/datasets/dupes/")
    manifests_before = pipeline.stack.list_keys("manifests/dupes/")
    for role in ("y", "x", "y"):  # the labels too: they are what completes the split
        key = f"incoming/datasets/dupes/{OFFICIAL.format(split='train', role=role)}"
        version = pipeline.stack.s3.head_object(Bucket=pipeline.stack.bucket, Key=key)["VersionId"]
        for _ in range(2):
            pipeline.deliver_object_created(key, version)
    (ready,) = pipeline.events_for("Split Ready", dataset="dupes")
    pipeline.publish_again(ready, times=3)  # and the announcement itself, to the SageMaker flow
    pipeline.settle()
    assert len(pipeline.events_for("Split Ready", dataset="dupes")) == 1 + 3  # only the replays we sent
    assert pipeline.stack.list_keys("images/datasets/dupes/") == images_before
    assert pipeline.stack.list_keys("manifests/dupes/") == manifests_before
    assert pipeline.owner_record("split#dupes/train")["status"] == "ready"


def test_redropping_a_split_replaces_it_and_announces_again(pipeline, patches):
    x, y = patches
    _drop_split(pipeline, "redrop", "train", x[:10], y[:10])
    _drop_split(pipeline, "redrop", "train", x[10:30], y[10:30])
    events = pipeline.events_for("Split Ready", dataset="redrop")
    assert [e["detail"]["patch_count"] for e in events] == [10, 20]
    first, second = (e["detail"]["manifest_key"] for e in events)
    assert first != second, "a job trained on the first upload keeps its manifest"
    assert len(pipeline.lines(first)) == 10 and len(pipeline.lines(second)) == 20


def test_outputs_never_trigger_the_pipeline(pipeline, patches):
    """A split, a slide and a bad file write images, manifests and quarantine copies: none is ingested."""
    x, y = patches
    _drop_split(pipeline, "outputs", "valid", x[:5], y[:5])
    pipeline.drop("incoming/slides/outputs.h5", h5_bytes(x=x[:3]))
    pipeline.drop("incoming/slides/outputs-bad.h5", b"junk")
    pipeline.settle()
    assert pipeline.stack.list_keys("images/") and pipeline.stack.list_keys("quarantine/")
    written = [r["key"] for r in pipeline.stack.records() if r["pk"].startswith("file#")]
    assert "incoming/slides/outputs.h5" in written
    assert all(key.startswith("incoming/") for key in written)

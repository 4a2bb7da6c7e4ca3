import io
import json

import numpy as np
from PIL import Image

from pcam_pipeline.ingestion.manifests import augmented_manifest_lines, transform_manifest
from pcam_pipeline.ingestion.patches import encode_jpeg, image_shape
from pcam_pipeline.ingestion.shard_planning import plan_shards


def test_a_patch_becomes_a_jpeg_that_looks_like_it(sample_patches):
    patch = sample_patches[0][3]
    data = encode_jpeg(patch, quality=90)
    decoded = np.asarray(Image.open(io.BytesIO(data)))
    assert data[:2] == b"\xff\xd8" and decoded.shape == (96, 96, 3)
    assert np.abs(decoded.astype(int) - patch.astype(int)).mean() < 6


def test_jpeg_quality_and_resize_are_honoured(sample_patches):
    patch = sample_patches[0][0]
    assert len(encode_jpeg(patch, quality=50)) < len(encode_jpeg(patch, quality=95))
    resized = Image.open(io.BytesIO(encode_jpeg(patch, quality=90, resize_to=224)))
    assert resized.size == (224, 224)
    assert image_shape(224) == (3, 224, 224) and image_shape(0) == (3, 96, 96)


def test_augmented_manifest_lists_patches_in_order_with_string_classes():
    lines = list(augmented_manifest_lines("bkt", "images/datasets/d/train/r1/", [1, 0, 1]))
    records = [json.loads(line) for line in lines]
    assert all(line.endswith("\n") for line in lines)
    assert records[0] == {"source-ref": "s3://bkt/images/datasets/d/train/r1/0000000.jpg", "class": "1"}
    assert [r["class"] for r in records] == ["1", "0", "1"]
    assert list(records[2]) == ["source-ref", "class"], "attribute order matters to SageMaker"


def test_transform_manifest_is_a_prefix_then_patch_names():
    document = json.loads(transform_manifest("bkt", "images/slides/s 1/r/", 3))
    assert document == [{"prefix": "s3://bkt/images/slides/s 1/r/"}, "r-0000000.jpg", "r-0000001.jpg", "r-0000002.jpg"]


def test_shards_cover_every_patch_once():
    shards = plan_shards(262_144, 16_384)
    assert len(shards) == 16 and shards[0] == (0, 16_384) and shards[-1][1] == 262_144
    assert plan_shards(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert sum(stop - start for start, stop in plan_shards(12_345, 1000)) == 12_345

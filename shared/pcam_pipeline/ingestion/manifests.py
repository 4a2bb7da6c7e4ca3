"""SageMaker manifest documents. Pure."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from pcam_pipeline.core.keys import SLIDE_IMAGES, patch_file_name


def augmented_manifest_lines(bucket: str, image_prefix: str, labels: Iterable[int]) -> Iterator[str]:
    """JSON lines for the built-in image classification algorithm (AttributeNames [source-ref, class])."""
    for index, label in enumerate(labels):
        uri = f"s3://{bucket}/{image_prefix}{patch_file_name(index, image_prefix)}"
        yield json.dumps({"source-ref": uri, "class": str(int(label))}) + "\n"


def transform_manifest(bucket: str, image_prefix: str, count: int) -> str:
    """Batch Transform ManifestFile: a JSON array of a prefix followed by the patch names in order."""
    entries: list[Any] = [{"prefix": f"s3://{bucket}/{image_prefix}"}]
    entries.extend(patch_file_name(index, image_prefix) for index in range(count))
    return json.dumps(entries)


def scoring_manifest(bucket: str, slides: Iterable[tuple[str, int]]) -> str:
    """Batch Transform ManifestFile over several slides: the prefix all slides' patches share, then each
    slide's patches in order as ``<slide_id>/<run_id>/<patch>``. ``slides``: (image prefix, patch count).

    SageMaker writes each entry's output at ``<S3OutputPath>/<entry>.out`` (one folder per slide upload), or
    perhaps at ``<S3OutputPath>/<base name>.out``: base names are unique in a job (`keys.patch_file_name`)."""
    entries: list[Any] = [{"prefix": f"s3://{bucket}/{SLIDE_IMAGES}"}]
    for image_prefix, count in slides:
        relative = image_prefix.removeprefix(SLIDE_IMAGES)
        entries.extend(relative + patch_file_name(index, image_prefix) for index in range(count))
    return json.dumps(entries)

"""SageMaker manifest documents. Pure."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from pcam_pipeline.keys import patch_file_name


def augmented_manifest_lines(bucket: str, image_prefix: str, labels: Iterable[int]) -> Iterator[str]:
    """JSON lines for the built-in image classification algorithm (AttributeNames [source-ref, class])."""
    for index, label in enumerate(labels):
        uri = f"s3://{bucket}/{image_prefix}{patch_file_name(index)}"
        yield json.dumps({"source-ref": uri, "class": str(int(label))}) + "\n"


def transform_manifest(bucket: str, image_prefix: str, count: int) -> str:
    """Batch Transform ManifestFile: a JSON array of a prefix followed by the patch names in order."""
    entries: list = [{"prefix": f"s3://{bucket}/{image_prefix}"}]
    entries.extend(patch_file_name(index) for index in range(count))
    return json.dumps(entries)

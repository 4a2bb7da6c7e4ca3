"""A Batch Transform job's inputs (an S3 prefix or a ManifestFile) and its outputs: one ``<input>.out`` per image,
{"prediction": [p0, p1]}, as the built-in Image Classification algorithm writes them."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

from pcam_local.job_failures import TransformFailed
from pcam_local.local_trainer import split_s3_uri
from pcam_pipeline.aws import storage

TRANSFORM_BATCH = 256


def transform_inputs(s3, data_type: str, uri: str, base_names: bool) -> list[tuple[str, str, str]]:
    """(bucket, key, output name relative to the input prefix) of every input object, in order."""
    bucket, key = split_s3_uri(uri)
    if data_type == "ManifestFile":
        entries = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        prefix_bucket, prefix = split_s3_uri(entries[0]["prefix"])
        return [(prefix_bucket, prefix + name, name.rsplit("/", 1)[-1] if base_names else name) for name in entries[1:]]
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
        found.extend(obj["Key"] for obj in page.get("Contents", []))
    base = key[: key.rfind("/") + 1]
    return [(bucket, k, k[len(base) :]) for k in sorted(found)]


def read_image(s3, bucket: str, key: str) -> np.ndarray:
    try:
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    except Exception as exc:
        raise TransformFailed(f"ClientError: s3://{bucket}/{key} could not be read as an image: {exc}") from exc


def write_predictions(s3, model: Any, inputs: list[tuple[str, str, str]], output_uri: str, lost: int = 0) -> None:
    """Score every input image with the model and write its ``.out``; the last ``lost`` outputs go missing
    (a rehearsal of a lost object)."""
    out_bucket, out_prefix = split_s3_uri(output_uri)
    out_prefix = out_prefix.rstrip("/") + "/" if out_prefix else ""
    inputs_kept = len(inputs) - lost
    with ThreadPoolExecutor(max_workers=16) as readers, storage.ConcurrentUploader(s3, out_bucket) as writer:
        for start in range(0, len(inputs), TRANSFORM_BATCH):
            batch = inputs[start : start + TRANSFORM_BATCH]
            images = list(readers.map(lambda item: read_image(s3, *item[:2]), batch))
            probabilities = model.predict_proba(np.stack(images))
            for position, ((_, _, relative), p) in enumerate(zip(batch, probabilities, strict=True), start):
                if position >= inputs_kept:
                    continue
                body = json.dumps({"prediction": [float(p[0]), float(p[1])]})
                writer.put(f"{out_prefix}{relative}.out", body.encode(), "application/json")

"""Local stand-in for a SageMaker training job of the built-in image classifier.

Takes the same CreateTrainingJob request the cloud path sends (checked against botocore's model),
reads the same augmented manifests and JPEGs from S3, trains the local CPU model and writes
``<S3OutputPath>/<job>/output/model.tar.gz`` as SageMaker does. The executor that runs it on the
local stack and reports state-change events is the next increment of issue 3.
"""

from __future__ import annotations

import io
import json
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pcam_local.job_failures import TrainingFailed
from pcam_pipeline.models.sagemaker_jobs import validate
from pcam_training import algorithm_rules

MODEL_FILE = "local-image-classifier.pkl"


@dataclass(frozen=True)
class TrainingResult:
    model_uri: str
    train_count: int
    validation_count: int
    validation_accuracy: float


def split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def read_augmented_manifest(s3, uri: str) -> list[dict]:
    bucket, key = split_s3_uri(uri)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def load_patches(s3, records: list[dict], threads: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Fetch and decode every JPEG a manifest lists, in manifest order."""

    def fetch(record: dict) -> np.ndarray:
        bucket, key = split_s3_uri(record["source-ref"])
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    with ThreadPoolExecutor(max_workers=threads) as pool:
        patches = np.stack(list(pool.map(fetch, records)))
    return patches, np.array([int(r["class"]) for r in records], dtype=np.uint8)


def run_training_job(s3, request: dict) -> TrainingResult:
    validate("CreateTrainingJob", request)
    refused = algorithm_rules.training_request_problems(request)
    if refused:
        raise TrainingFailed("ClientError: " + "; ".join(refused))
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}
    hyperparameters = request["HyperParameters"]
    train_records = read_augmented_manifest(s3, channels["train"])
    if int(hyperparameters["num_training_samples"]) != len(train_records):
        raise TrainingFailed(
            f"ClientError: num_training_samples is {hyperparameters['num_training_samples']} but the train "
            f"channel holds {len(train_records)} images"
        )
    x_train, y_train = load_patches(s3, train_records)
    x_valid, y_valid = load_patches(s3, read_augmented_manifest(s3, channels["validation"]))
    model = _classifier().from_hyperparameters(hyperparameters).fit(x_train, y_train)
    accuracy = float((model.predict_proba(x_valid).argmax(axis=1) == y_valid).mean())
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        payload = model.dumps()
        info = tarfile.TarInfo(MODEL_FILE)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    bucket, prefix = split_s3_uri(request["OutputDataConfig"]["S3OutputPath"])
    key = f"{prefix.rstrip('/')}/{request['TrainingJobName']}/output/model.tar.gz".lstrip("/")
    s3.put_object(Bucket=bucket, Key=key, Body=archive.getvalue())
    return TrainingResult(f"s3://{bucket}/{key}", len(y_train), len(y_valid), accuracy)


def _classifier():
    """Imported when a job runs: the local stack's spawned Lambda workers re-import whatever the main
    module imported, and scikit-learn would add ~100 MB to each of them."""
    from pcam_training.local_model import LocalImageClassifier

    return LocalImageClassifier


def load_model(s3, model_uri: str):
    bucket, key = split_s3_uri(model_uri)
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())) as tar:
        return _classifier().loads(tar.extractfile(MODEL_FILE).read())

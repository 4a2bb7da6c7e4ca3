"""The local training stand-in trains on what ingestion produced, from the cloud path's own request."""

import numpy as np
import pytest

from pcam_local.job_failures import TrainingFailed
from pcam_local.local_trainer import load_model, run_training_job
from pcam_pipeline.models.sagemaker_jobs import SageMakerSettings, TrainingInputs, job_name, training_job_request
from pcam_synth.synth import synth_split
from tests.integration.conftest import INTEGRATION

pytestmark = INTEGRATION


def _ingest_split(pipeline, dataset, split, x, y):
    pipeline.drop_split(dataset, split, x, y)
    pipeline.settle()
    (event,) = pipeline.events_for("Split Ready", dataset=dataset, split=split)
    return event["detail"]


@pytest.fixture(scope="module")
def trainable(stack):
    from tests.integration.conftest import Pipeline

    pipeline = Pipeline(stack)
    x, y = synth_split(700, np.random.default_rng(8))
    train = _ingest_split(pipeline, "trainable", "train", x[:500], y[:500])
    valid = _ingest_split(pipeline, "trainable", "valid", x[500:], y[500:])
    settings = SageMakerSettings(
        role_arn="arn:aws:iam::123456789012:role/pcam-sagemaker", region="us-east-1", bucket=stack.bucket
    )
    return stack, settings, train, valid


def test_a_training_request_from_the_cloud_path_really_trains_and_writes_model_tar_gz(trainable):
    stack, settings, train, valid = trainable
    inputs = TrainingInputs(
        job_name("trainable", "a"), train["manifest_uri"], valid["manifest_uri"], train["patch_count"], 96
    )
    result = run_training_job(stack.s3, training_job_request(settings, inputs))
    assert result.model_uri == f"s3://{stack.bucket}/models/{inputs.job_name}/output/model.tar.gz"
    assert (result.train_count, result.validation_count) == (500, 200)
    assert result.validation_accuracy > 0.7
    model = load_model(stack.s3, result.model_uri)
    assert model.predict_proba(np.zeros((1, 96, 96, 3), np.uint8)).shape == (1, 2)


def test_a_wrong_num_training_samples_fails_the_job_as_sagemaker_would(trainable):
    stack, settings, train, valid = trainable
    inputs = TrainingInputs(job_name("trainable", "b"), train["manifest_uri"], valid["manifest_uri"], 499, 96)
    with pytest.raises(TrainingFailed, match="num_training_samples is 499 but the train channel holds 500"):
        run_training_job(stack.s3, training_job_request(settings, inputs))

"""Each Lambda entry point (functions/*/app.handler) with generated SQS batches: partial batch failures,
the last attempt recorded, and idempotency on redelivery. In-process moto holds Powertools' idempotency table
(DynamoDB, every request checked as AWS would); the use cases behind each handler run on the in-memory fakes."""

import importlib.util
import json
import uuid
from pathlib import Path
from types import SimpleNamespace

import boto3
import numpy as np
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from moto import mock_aws

from pcam_pipeline.aws import request_rules
from pcam_pipeline.core.errors import RetryableError
from pcam_pipeline.core.records import SlideRecord
from pcam_pipeline.core.statuses import FileStatus, OwnerStatus
from pcam_pipeline.ingestion.conversion import ShardConverter
from pcam_pipeline.ingestion.ingestor import Ingestor
from pcam_pipeline.models.flow import SageMakerFlow
from tests.fakes import (
    FakeLauncher,
    InMemoryBlobStore,
    InMemoryQueue,
    RecordingAlerter,
    RecordingPublisher,
    in_memory_state,
)

ROOT = Path(__file__).parents[2]
ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "DATA_BUCKET": "data",
    "STATE_TABLE": "state",
    "IDEMPOTENCY_TABLE": "idempotency",
    "EVENT_BUS": "bus",
    "CONVERT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/convert",
    "ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:alerts",
    "SAGEMAKER_TRAINING_ROLE_ARN": "arn:aws:iam::123456789012:role/sm-training",
    "SAGEMAKER_TRANSFORM_ROLE_ARN": "arn:aws:iam::123456789012:role/sm-transform",
    "SAGEMAKER_EVALUATION_ROLE_ARN": "arn:aws:iam::123456789012:role/sm-evaluation",
    "TRAINING_INSTANCE_TYPE": "ml.p3.2xlarge",
    "TRANSFORM_INSTANCE_TYPE": "ml.m5.xlarge",
    "EVALUATION_INSTANCE_TYPE": "ml.m5.large",
    "MAX_RECEIVE_COUNT": "3",
}
CONTEXT = SimpleNamespace(
    function_name="test",
    memory_limit_in_mb=1024,
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:test",
    aws_request_id="request",
    get_remaining_time_in_millis=lambda: 60_000,
)


@pytest.fixture
def aws(monkeypatch):
    from pcam_pipeline.aws.observability import metrics

    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    # Metrics were created when the tests imported the library, before this environment existed.
    monkeypatch.setattr(metrics.provider, "namespace", "PcamPipeline")
    with mock_aws():
        boto3.setup_default_session()
        request_rules.install(boto3.DEFAULT_SESSION)  # every request the handlers send is checked as AWS would
        boto3.client("s3").create_bucket(Bucket="data")
        boto3.client("dynamodb").create_table(
            TableName="idempotency",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield


def load_app(function: str):
    spec = importlib.util.spec_from_file_location(f"app_{function}", ROOT / "functions" / function / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sqs_event(*bodies, receive_count: int = 1) -> dict:
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "handle",
                "body": body if isinstance(body, str) else json.dumps(body),
                "attributes": {"ApproximateReceiveCount": str(receive_count)},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:queue",
                "awsRegion": "us-east-1",
            }
            for body in bodies
        ]
    }


def failed_ids(response: dict) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def fixture_event(name: str) -> dict:
    return json.loads((ROOT / "events" / name).read_text())


# ------------------------------------------------------------------ SageMaker flow
@pytest.fixture
def flow_app(aws, monkeypatch):
    app = load_app("sagemaker_flow")
    state, launcher = in_memory_state(), FakeLauncher()
    flow = SageMakerFlow(app.settings, state, InMemoryBlobStore(), launcher, RecordingPublisher(), RecordingAlerter())
    monkeypatch.setattr(app, "flow", flow)
    return SimpleNamespace(app=app, state=state, launcher=launcher)


def split_ready_event(split: str) -> dict:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Split Ready",
        "source": "pcam.pipeline",
        "account": "123456789012",
        "time": "2026-11-27T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"dataset": "ds", "split": split, "run_id": "r"},
    }


def test_the_flow_handler_reports_only_the_poison_record_of_a_batch(flow_app):
    event = sqs_event(split_ready_event("train"), "not json", fixture_event("sagemaker-training-job-state-change.json"))
    response = flow_app.app.handler(event, CONTEXT)
    assert failed_ids(response) == [event["Records"][1]["messageId"]]


def test_the_flow_handler_handles_an_event_delivered_twice_once(flow_app, monkeypatch):
    handled = []
    on_event = flow_app.app.flow.on_event
    monkeypatch.setattr(flow_app.app.flow, "on_event", lambda *args: handled.append(args) or on_event(*args))
    ready = split_ready_event("valid")
    assert failed_ids(flow_app.app.handler(sqs_event(ready), CONTEXT)) == []
    assert failed_ids(flow_app.app.handler(sqs_event(ready, receive_count=2), CONTEXT)) == []
    assert failed_ids(flow_app.app.handler(sqs_event(split_ready_event("valid")), CONTEXT)) == []
    assert len(handled) == 2  # the redelivered event (same id) was not handled again; a new one was


# ------------------------------------------------------------------ conversion
@pytest.fixture
def convert_app(aws, monkeypatch):
    app = load_app("convert_shard")
    state = in_memory_state()
    monkeypatch.setattr(
        app, "converter", ShardConverter(app.settings, InMemoryBlobStore(), state, RecordingPublisher())
    )
    return SimpleNamespace(app=app, state=state)


def shard_message(file_key: str) -> dict:
    return {
        "owner": "slide#s1",
        "run_id": "r1",
        "shard": 0,
        "start": 0,
        "stop": 4,
        "source_key": file_key,
        "source_version": None,
        "image_prefix": "images/slides/s1/r1/",
        "file_key": file_key,
        "file_version": "v1",
    }


@pytest.mark.parametrize(("receive_count", "recorded"), [(1, False), (3, True)])
def test_a_failing_shard_is_retried_and_recorded_only_on_its_last_attempt(convert_app, receive_count, recorded):
    convert_app.state.start_patch_conversion(
        "slide#s1", {"kind": "slide", "x_run": "r1", "shards_total": 1}, SlideRecord()
    )
    event = sqs_event(shard_message("incoming/slides/missing.h5"), receive_count=receive_count)
    with pytest.raises(BatchProcessingError):  # a batch whose every record failed is retried whole
        convert_app.app.handler(event, CONTEXT)
    record = convert_app.state.file_version("incoming/slides/missing.h5", "v1")
    if not recorded:
        assert record is None
        return
    assert record.status is FileStatus.FAILED and "dead-letter queue" in record.reason
    assert "shard 0 failed" in convert_app.state.owner("slide#s1").failure


# ------------------------------------------------------------------ ingestion
@pytest.fixture
def ingest_app(aws, monkeypatch):
    app = load_app("ingest")
    state, blobs = in_memory_state(), InMemoryBlobStore()
    ingestor = Ingestor(app.settings, blobs, state, RecordingPublisher(), InMemoryQueue())
    monkeypatch.setattr(app, "ingestor", ingestor)
    return SimpleNamespace(app=app, state=state, blobs=blobs)


def test_the_ingest_handler_quarantines_a_file_that_is_not_hdf5_and_ignores_test_events(ingest_app):
    version = ingest_app.blobs.put_bytes("incoming/slides/notes.h5", b"hello", "")
    dropped = fixture_event("s3-object-created-eventbridge.json")
    etag = ingest_app.blobs.versions("incoming/slides/notes.h5")[-1].etag
    dropped["detail"]["bucket"]["name"] = "data"
    dropped["detail"]["object"].update({"key": "incoming/slides/notes.h5", "etag": etag, "version-id": version})
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "data"}
    assert failed_ids(ingest_app.app.handler(sqs_event(dropped, test_event), CONTEXT)) == []
    record = ingest_app.state.file_version("incoming/slides/notes.h5", version)
    assert record.status is FileStatus.QUARANTINED and "not an HDF5 file" in record.reason
    assert "quarantine/incoming/slides/notes.h5" in ingest_app.blobs.stored_keys()


class PublisherFailingOnce(RecordingPublisher):
    def __init__(self):
        super().__init__()
        self.failed = False

    def publish(self, detail_type: str, detail: dict) -> None:
        if not self.failed:
            self.failed = True
            raise RetryableError("the bus is unavailable")
        super().publish(detail_type, detail)


def test_a_redriven_shard_finishes_an_announcement_its_first_attempt_left_half_done(aws, monkeypatch):
    """The first attempt claimed the announcement, then died publishing; the message went to the dead-letter
    queue. Redriven (a new SQS message id), the same shard must be able to finish announcing."""
    from tests.lab import h5_bytes

    app = load_app("convert_shard")
    state, publisher = in_memory_state(), PublisherFailingOnce()
    blobs = InMemoryBlobStore()
    monkeypatch.setattr(app, "converter", ShardConverter(app.settings, blobs, state, publisher))
    patches = np.zeros((4, 96, 96, 3), dtype=np.uint8)
    blobs.put_bytes("incoming/slides/s1.h5", h5_bytes(x=patches), "")
    fields = {"kind": "slide", "slide_id": "s1", "x_key": "incoming/slides/s1.h5", "x_version": "v1", "x_run": "r1"}
    fields |= {"x_count": 4, "shards_total": 1, "image_prefix": "images/s1/"}
    state.start_patch_conversion("slide#s1", fields, SlideRecord())
    message = {**shard_message("incoming/slides/s1.h5"), "image_prefix": "images/s1/"}
    with pytest.raises(BatchProcessingError):
        app.handler(sqs_event(message, receive_count=3), CONTEXT)  # last attempt: to the dead-letter queue
    assert failed_ids(app.handler(sqs_event(message), CONTEXT)) == []  # redriven: a new message id
    assert [detail["slide_id"] for detail in publisher.of_type("Slide Ready")] == ["s1"]
    assert state.slide("s1").status is OwnerStatus.READY

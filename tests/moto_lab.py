"""An in-process moto "lab": a versioned bucket (as deployed), the conversion queue, the in-memory state
table, and the ingestion and conversion use cases wired to them."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from pcam_pipeline.aws import request_rules
from pcam_pipeline.core.dropped_files import DroppedFile
from pcam_pipeline.core.settings import ConversionSettings, IngestSettings
from pcam_pipeline.ingestion.conversion import ShardConverter
from pcam_pipeline.ingestion.ingestor import Ingestor
from pcam_pipeline.ingestion.shard_planning import ShardTask
from tests.fakes import RecordingPublisher, in_memory_state
from tests.integration.conftest import h5_bytes

BUCKET = "data"


@pytest.fixture
def lab(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield make_lab()


def make_lab(
    patches_per_shard: int = 2, max_uncompressed_bytes: int = 16 << 30, max_patches_per_slide: int = 100_000
) -> Lab:
    """The lab's bucket, queue and use cases; call it where moto's mock_aws is active."""
    session = boto3.Session(region_name="us-east-1")
    request_rules.install(session)
    s3, sqs = session.client("s3"), session.client("sqs")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    queue_url = sqs.create_queue(QueueName="convert")["QueueUrl"]
    settings = IngestSettings(
        conversion=ConversionSettings(
            BUCKET,
            "state",
            "bus",
            jpeg_quality=90,
            resize_to=0,
            max_receive_count=3,
            max_patches_per_slide=max_patches_per_slide,
        ),
        idempotency_table="idempotency",
        convert_queue_url=queue_url,
        patches_per_shard=patches_per_shard,
        max_uncompressed_bytes=max_uncompressed_bytes,
    )
    state, publisher = in_memory_state(), RecordingPublisher()
    converter = ShardConverter(settings.conversion, s3, state, publisher)
    return Lab(s3, sqs, queue_url, state, Ingestor(settings, s3, state, publisher, sqs), converter, publisher)


class Lab:
    def __init__(self, s3, sqs, queue_url, state, ingestor, converter, publisher):
        self.s3, self.sqs, self.queue_url, self.state, self.ingestor = s3, sqs, queue_url, state, ingestor
        self.converter, self.publisher = converter, publisher

    def drop(self, key: str, body: bytes | None = None, **datasets) -> DroppedFile:
        response = self.s3.put_object(Bucket=BUCKET, Key=key, Body=body if body is not None else h5_bytes(**datasets))
        return DroppedFile(BUCKET, key, response["VersionId"], response["ETag"].strip('"'))

    def shard_messages(self) -> list[dict]:
        bodies = []
        while messages := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages"):
            bodies += [json.loads(m["Body"]) for m in messages]
            for message in messages:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return bodies

    def convert_all(self) -> list[dict]:
        """Run every planned shard, as the conversion function would."""
        return [self.converter.convert(ShardTask.from_message(body)) for body in self.shard_messages()]

    def between_read_and_write(self, reader: str, other_delivery) -> None:
        """The next ``reader`` call (``split`` or ``slide``) returns its read after ``other_delivery`` ran."""
        real, pending = getattr(self.state, reader), [other_delivery]

        def read_then_let_the_other_run(*args):
            record = real(*args)
            if pending:
                pending.pop()()
            return record

        setattr(self.state, reader, read_then_let_the_other_run)

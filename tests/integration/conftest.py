import json
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from pcam_local.local_stack import LocalStack
from tests.lab import h5_bytes

# Every integration test file sets: pytestmark = INTEGRATION. `make test` runs with --dist loadfile: a
# file's tests run in order on one worker, and each worker starts at most one shared session stack.
# (xdist's loadgroup no longer groups under pytest 9: it rewrites a node id attribute pytest 9 ignores.)
INTEGRATION = [pytest.mark.integration]

# Small shards so that even small test files fan out over several conversion invocations.
# A ready slide's scoring job starts at once (slides share a job only while every slot is busy); the
# scoring-queue tests set a window of their own.
# The test splits here hold 80 tumour patches: the test sensitivity's 95 % interval is some 0.1 wide, so the
# gate's sensitivity rule is set for that size (its default is for PCam's 16,000; its tests: test_promotion.py).
TEST_PARAMETERS = {"PatchesPerShard": "16", "MaxUncompressedGB": "0.05", "ScoringBatchWindowSeconds": "0",
                   "PromotionMinimumSensitivity": "0.6"}  # fmt: skip


def assert_every_call_was_allowed(stack: LocalStack) -> None:
    """IAM sufficiency: every call each role made in these tests is allowed by its policies (offline check)."""
    denied = {report["role"]: report["denied"] for report in stack.iam_report() if report["denied"]}
    assert denied == {}, f"calls their role does not allow (see {stack.work_dir}/iam-report.json): {denied}"


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    with LocalStack(parameters=TEST_PARAMETERS, work_dir=tmp_path_factory.mktemp("stack")) as running:
        yield running
        assert_every_call_was_allowed(running)


@contextmanager
def stack_of_its_own(tmp_path_factory, name: str, **parameters: str) -> Iterator[LocalStack]:
    """A stack for one module, with these template parameters over the tests' own; its calls are IAM-checked."""
    with LocalStack(parameters={**TEST_PARAMETERS, **parameters}, work_dir=tmp_path_factory.mktemp(name)) as running:
        yield running
        assert_every_call_was_allowed(running)


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory, request):
    """A stack for one module only, for tests that need to know which model is current.

    Use it by overriding ``stack`` in the module: ``def stack(private_stack): return private_stack``.
    """
    with stack_of_its_own(tmp_path_factory, request.module.__name__.rsplit(".", 1)[-1]) as running:
        yield running


@pytest.fixture(scope="module")
def alerts(stack):
    """An operator's mailbox: a queue subscribed to the alert topic; returns the SNS messages received."""
    sqs = stack.sqs
    url = sqs.create_queue(QueueName=f"operator-mailbox-{id(stack)}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns = stack._session.client("sns", endpoint_url=stack.endpoint)
    sns.subscribe(TopicArn=stack.deployed.outputs["AlertTopicArn"], Protocol="sqs", Endpoint=arn)

    def read() -> list[dict]:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return [json.loads(m["Body"]) for m in messages]

    return read


class Pipeline:
    """What a lab and a downstream system see: drop objects, wait, read results and events."""

    def __init__(self, stack: LocalStack):
        self.stack = stack

    def drop(self, key: str, body: bytes) -> None:
        self.stack.s3.put_object(Bucket=self.stack.bucket, Key=key, Body=body)

    def drop_split(self, dataset: str, split: str, x, y) -> None:
        """Drop a split's images and labels under the official PCam file names."""
        for role, body in (("x", h5_bytes(x=x)), ("y", h5_bytes(y=y.reshape(-1, 1, 1, 1)))):
            self.drop(f"incoming/datasets/{dataset}/camelyonpatch_level_2_split_{split}_{role}.h5", body)

    def deliver_object_created(self, key: str, version: str, etag: str = "replayed", delay_seconds: int = 0) -> None:
        """Deliver an S3 "Object Created" notification to the ingest queue again (at-least-once delivery).

        S3 sends the real ETag; a different one gets past the handler's idempotency record, so the domain
        logic itself has to cope with the repeat."""
        event = {
            "version": "0",
            "id": f"replayed-{key}-{version}",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": "123456789012",
            "time": "2026-11-25T00:00:00Z",
            "region": "us-east-1",
            "resources": [f"arn:aws:s3:::{self.stack.bucket}"],
            "detail": {
                "version": "0",
                "bucket": {"name": self.stack.bucket},
                "object": {"key": key, "size": 1, "etag": etag, "version-id": version},
                "reason": "PutObject",
            },
        }
        queue = next(m.queue_url for m in self.stack.deployed.mappings if m.function.logical_id == "IngestFunction")
        self.stack.sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(event), DelaySeconds=delay_seconds)

    def publish_again(self, event: dict, times: int = 2) -> None:
        """Deliver a pipeline event again, as EventBridge's at-least-once delivery may."""
        entry = {
            "Source": event["source"],
            "DetailType": event["detail-type"],
            "Detail": json.dumps(event["detail"]),
            "EventBusName": self.stack.deployed.outputs["PipelineBusName"],
        }
        self.stack._session.client("events", endpoint_url=self.stack.endpoint).put_events(Entries=[entry] * times)

    def settle(self) -> None:
        # A ceiling, not a wait: a train-evaluate-promote-score step took over 180 s once with both cores busy.
        assert self.stack.wait_until_idle(timeout=420), "the pipeline did not go idle"

    def json(self, key: str):
        return json.loads(self.stack.read(key))

    def lines(self, key: str) -> list[dict]:
        return [json.loads(line) for line in self.stack.read(key).decode().splitlines()]

    def events_for(self, detail_type: str, **match) -> list[dict]:
        return [
            e
            for e in self.stack.pipeline_events()
            if e["detail-type"] == detail_type and all(e["detail"].get(k) == v for k, v in match.items())
        ]

    def file_record(self, key: str) -> dict:
        records = [r for r in self.stack.records() if r["pk"] == f"file#{key}"]
        assert records, f"no state recorded for {key}"
        return max(records, key=lambda r: r["updated_at"])

    def owner_record(self, pk: str) -> dict:
        return self.stack.state.get(pk)


@pytest.fixture
def pipeline(stack) -> Pipeline:
    return Pipeline(stack)


@pytest.fixture(scope="session")
def patches():
    from pcam_synth.synth import synth_split

    return synth_split(50, np.random.default_rng(11))

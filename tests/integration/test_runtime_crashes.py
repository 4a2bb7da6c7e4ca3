"""The local runtime behaves as Lambda when a function's process dies: that invocation fails with
Runtime.ExitError, the environment gets a new process, the message comes back until its maxReceiveCount
sends it to the dead-letter queue, and the other messages are handled as if nothing happened."""

import json
from pathlib import Path

import boto3
import pytest

from pcam_local import REGION
from pcam_local.moto_server import MotoServer
from pcam_local.runtime import LocalRuntime
from pcam_local.stack import DeployedStack, FunctionSpec, QueueMapping
from tests.integration.conftest import INTEGRATION

pytestmark = INTEGRATION

MAX_RECEIVE_COUNT = 3


@pytest.fixture
def server(tmp_path):
    running = MotoServer(log_path=tmp_path / "moto.log").start()
    yield running
    running.stop()


def test_a_function_that_kills_its_process_fails_alone_and_its_message_is_dead_lettered(server, tmp_path):
    sqs = boto3.client("sqs", endpoint_url=server.url, region_name=REGION, aws_access_key_id="local",
                       aws_secret_access_key="local")  # fmt: skip
    dead = sqs.create_queue(QueueName="crash-dlq")["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": dead_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
    queue = sqs.create_queue(QueueName="crash", Attributes={"RedrivePolicy": json.dumps(redrive)})["QueueUrl"]
    done = tmp_path / "done"
    done.mkdir()
    function = FunctionSpec("CrashFunction", "crash", Path(__file__).parent / "crashing_function", "app.handler",
                            {"DONE_DIR": str(done)}, timeout=30, memory_mb=128)  # fmt: skip
    mapping = QueueMapping(function, queue, batch_size=1, report_batch_item_failures=False, maximum_concurrency=2)
    runtime = LocalRuntime(DeployedStack({}, {"CrashFunction": function}, [mapping]), server.url, tmp_path / "logs")
    runtime.start()
    try:
        names = [f"file-{index}" for index in range(6)]
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"name": "poison", "crash": True}))
        for name in names:
            sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"name": name}))
        assert runtime.wait_until_idle(timeout=120)
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"name": "after"}))  # the runtime still works
        assert runtime.wait_until_idle(timeout=60)
    finally:
        runtime.stop()
    assert sorted(path.name for path in done.iterdir()) == sorted([*names, "after"])
    (dead_lettered,) = sqs.receive_message(QueueUrl=dead, MaxNumberOfMessages=10)["Messages"]
    assert json.loads(dead_lettered["Body"])["name"] == "poison"
    crashes = [invocation for invocation in runtime.invocations if invocation.error]
    assert len(crashes) == MAX_RECEIVE_COUNT
    assert all("Runtime.ExitError" in crash.error and "signal 11" in crash.error for crash in crashes), crashes
    assert sum(1 for invocation in runtime.invocations if not invocation.error) == len(names) + 1

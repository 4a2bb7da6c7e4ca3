"""The local runtime scales a function out as Lambda does: one warm environment serves messages that come
one at a time; more environments start only while the started ones are all busy (each holds ~150 MB)."""

import json
import time
from pathlib import Path

import boto3
import pytest

from pcam_local import REGION
from pcam_local.moto_server import MotoServer
from pcam_local.runtime import LocalRuntime
from pcam_local.stack import DeployedStack, FunctionSpec, QueueMapping
from tests.integration.conftest import INTEGRATION

pytestmark = INTEGRATION

FUNCTION_DIR = Path(__file__).parent / "crashing_function"


@pytest.fixture
def server(tmp_path):
    running = MotoServer(log_path=tmp_path / "moto.log").start()
    yield running
    running.stop()


@pytest.fixture
def queue(server):
    sqs = boto3.client("sqs", endpoint_url=server.url, region_name=REGION, aws_access_key_id="local",
                       aws_secret_access_key="local")  # fmt: skip
    return sqs, sqs.create_queue(QueueName="work")["QueueUrl"]


@pytest.fixture
def runtime(server, queue, tmp_path):
    (tmp_path / "done").mkdir()
    function = FunctionSpec("WorkFunction", "work", FUNCTION_DIR, "app.handler",
                            {"DONE_DIR": str(tmp_path / "done")}, timeout=30, memory_mb=128)  # fmt: skip
    mapping = QueueMapping(function, queue[1], batch_size=1, report_batch_item_failures=False, maximum_concurrency=3)
    running = LocalRuntime(DeployedStack({}, {"WorkFunction": function}, [mapping]), server.url, tmp_path / "logs")
    yield running.start()
    running.stop()


def _processes(done: Path) -> set[str]:
    return {path.read_text().split()[1] for path in done.iterdir()}


def test_messages_one_at_a_time_are_served_by_one_warm_environment(runtime, queue, tmp_path):
    sqs, url = queue
    for number in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"name": f"one-{number}"}))
        assert runtime.wait_until_idle(timeout=60)
        time.sleep(2.5)  # every poller, warm or cold, is back to its slowest idle pace: any could take the next

    assert len(list((tmp_path / "done").iterdir())) == 5
    assert len(_processes(tmp_path / "done")) == 1
    assert sum(environment.started for environment in runtime.environments) == 1


def test_a_backlog_scales_out_to_the_mappings_concurrency(runtime, queue, tmp_path):
    sqs, url = queue
    for number in range(9):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"name": f"slow-{number}", "seconds": 1.5}))
    assert runtime.wait_until_idle(timeout=120)

    assert len(list((tmp_path / "done").iterdir())) == 9
    assert len(_processes(tmp_path / "done")) >= 2
    assert runtime.peak_concurrency("WorkFunction") >= 2

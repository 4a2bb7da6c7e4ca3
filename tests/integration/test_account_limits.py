"""A new AWS account: Lambda concurrency 10 and SageMaker refusing starts for capacity. The work waits, and
nothing reaches a dead-letter queue.

A stack of its own: the account's concurrency is simulated by its runtime (a throttled batch is retried until
a slot frees, as Lambda retries an SQS batch within the queue's visibility timeout), and 18 workers compete
for 10 slots (ingest 5, conversion 8, flow 5)."""

import json

import numpy as np
import pytest

from pcam_local.local_stack import LocalStack
from pcam_ops.cli import main
from pcam_synth.synth import synth_slide, synth_split
from tests.integration.conftest import INTEGRATION, TEST_PARAMETERS, assert_every_call_was_allowed
from tests.lab import h5_bytes

pytestmark = [*INTEGRATION, pytest.mark.scenario]

ACCOUNT_CONCURRENCY = 10


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    parameters = {**TEST_PARAMETERS, "ConvertMaxConcurrency": "8"}
    with LocalStack(
        parameters=parameters,
        work_dir=tmp_path_factory.mktemp("account"),
        account_concurrency=ACCOUNT_CONCURRENCY,
        tick_seconds=1,
    ) as running:
        yield running
        assert_every_call_was_allowed(running)


def test_a_burst_on_a_new_account_waits_for_slots_and_capacity_and_nothing_is_dead_lettered(stack, pipeline):
    stack.sagemaker.refuse_next = {"TrainingJob": 2, "TransformJob": 2, "ProcessingJob": 1}
    rng = np.random.default_rng(31)
    for split, count in (("train", 300), ("valid", 100), ("test", 160)):
        pipeline.drop_split("new-account", split, *synth_split(count, rng))
    slide_ids = [f"burst-{index}" for index in range(6)]
    for index, slide_id in enumerate(slide_ids):
        patches, coords, _ = synth_slide(4, 5, np.random.default_rng(index))
        pipeline.drop(f"incoming/slides/{slide_id}.h5", h5_bytes(x=patches, coords=coords))
    pipeline.settle()

    runtime = stack.runtime
    assert runtime.account.throttled > 0, "more work than the account's concurrency: some invocations waited"
    assert runtime.account.peak <= ACCOUNT_CONCURRENCY
    assert stack.sagemaker.refuse_next == {"TrainingJob": 0, "TransformJob": 0, "ProcessingJob": 0}
    assert stack.state.get("models", "current")["dataset"] == "new-account", "trained, evaluated, promoted"
    for slide_id in slide_ids:
        assert pipeline.events_for("Slide Scored", slide_id=slide_id), slide_id
    assert {queue: letters for queue, letters in stack.dead_letters().items() if letters} == {}


def test_status_warns_that_the_queues_may_ask_for_more_than_the_account_has(stack, monkeypatch, capsys):
    for name, value in stack.environment().items():
        monkeypatch.setenv(name, value)
    assert main(["status", "--stack", "pcam-local", "--json"]) == 1
    (warning,) = [p for p in json.loads(capsys.readouterr().out)["problems"] if "MaximumConcurrency" in p]
    assert "adds up to 19, more than the account's 10 unreserved" in warning, "caps 5 + 8 + 5, the stream's 1"

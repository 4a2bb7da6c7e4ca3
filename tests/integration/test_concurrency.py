"""Many splits at once, at the template's concurrency, with S3 events delivered again and out of order.

The local runtime runs each function with as many workers as its deployed event source mapping allows
(IngestMaxConcurrency, SageMakerFlowMaxConcurrency; conversion two locally). The drops of every round
race each other: the x and y of one split land on different ingest workers at the same moment, and
repeated notifications arrive while the first ones are still being handled, and after."""

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.integration.conftest import INTEGRATION
from tests.lab import h5_bytes

pytestmark = INTEGRATION

ROUNDS = 3
SPLITS_PER_ROUND = 8
REPEATS_PER_FILE = 2


@pytest.fixture(scope="module")
def stack(private_stack):
    return private_stack


def test_the_stack_runs_each_function_at_its_deployed_concurrency(stack):
    deployed = {m.function.logical_id: m.maximum_concurrency for m in stack.deployed.mappings}
    assert deployed == {"IngestFunction": 5, "ConvertShardFunction": 2, "SageMakerFlowFunction": 5}
    deployed |= {m.function.logical_id: 1 for m in stack.deployed.streams}  # one shard, one invocation at a time
    assert deployed["LabStatusFunction"] == 1
    workers = Counter(worker.function.logical_id for worker in stack.runtime.environments)
    assert workers == deployed


@pytest.mark.parametrize("round_number", range(ROUNDS))
def test_splits_dropped_at_once_and_redelivered_out_of_order_are_each_announced_once(pipeline, round_number):
    rng = random.Random(round_number)
    patches = np.random.default_rng(round_number).integers(0, 255, (40, 96, 96, 3), dtype=np.uint8)
    splits = {f"race-{round_number}-{i}": 17 + i for i in range(SPLITS_PER_ROUND)}  # 2 or 3 shards each
    # Pairs whose x and y disagree in number: whichever is recorded second must be quarantined.
    odd_splits = {f"race-{round_number}-odd-{i}": 17 + i for i in range(SPLITS_PER_ROUND)}
    files = {}
    for dataset, count in {**splits, **odd_splits}.items():
        label_count = count if dataset in splits else count - 1
        labels = (np.arange(label_count) % 2).astype(np.uint8).reshape(-1, 1, 1, 1)
        files[f"incoming/datasets/{dataset}/{dataset}_test_x.h5"] = h5_bytes(x=patches[:count])
        files[f"incoming/datasets/{dataset}/{dataset}_test_y.h5"] = h5_bytes(y=labels)
    order = rng.sample(list(files), len(files))

    s3, bucket = pipeline.stack.s3, pipeline.stack.bucket
    with ThreadPoolExecutor(max_workers=len(files)) as pool:
        uploads = pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=files[key]), order)
        versions = {key: upload["VersionId"] for key, upload in zip(order, uploads, strict=True)}
    # While the first notifications are handled: each again, some late, in random order.
    repeats = [key for key in versions for _ in range(REPEATS_PER_FILE)]
    rng.shuffle(repeats)
    for key in repeats:
        pipeline.deliver_object_created(key, versions[key], delay_seconds=rng.choice([0, 0, 1, 3]))
    pipeline.settle()
    for key in rng.sample(list(versions), len(versions)):  # and once more after everything settled
        pipeline.deliver_object_created(key, versions[key])
    pipeline.settle()

    for dataset, count in splits.items():
        (ready,) = pipeline.events_for("Split Ready", dataset=dataset)
        record = pipeline.owner_record(f"split#{dataset}/test")
        assert record["status"] == "ready" and "failure" not in record
        lines = pipeline.lines(ready["detail"]["manifest_key"])
        refs = [line["source-ref"] for line in lines]
        assert len(refs) == len(set(refs)) == count, f"{dataset}: duplicate or missing manifest lines"
        assert [int(line["class"]) for line in lines] == [i % 2 for i in range(count)]
        assert len(pipeline.stack.list_keys(ready["detail"]["image_prefix"])) == count
        written = pipeline.stack.list_keys(f"manifests/{dataset}/")
        assert [key for key in written if key.endswith(".manifest")] == [ready["detail"]["manifest_key"]]
        assert len([key for key in written if key.endswith(".npy")]) == 1, "the labels kept once"

    for dataset in odd_splits:
        assert not pipeline.events_for("Split Ready", dataset=dataset)
        statuses = {role: pipeline.file_record(f"incoming/datasets/{dataset}/{dataset}_test_{role}.h5")["status"]
                    for role in "xy"}  # fmt: skip
        assert sorted(statuses.values()) in (["converting", "quarantined"], ["labels recorded", "quarantined"]), (
            f"{dataset}: {statuses}, split {pipeline.owner_record(f'split#{dataset}/test')}"
        )
        quarantined = next(role for role, status in statuses.items() if status == "quarantined")
        reason = pipeline.json(f"quarantine/incoming/datasets/{dataset}/{dataset}_test_{quarantined}.h5.error.json")
        assert "disagree in number" in reason["error"]
        assert pipeline.owner_record(f"split#{dataset}/test").get("status") != "failed"

    assert not any(pipeline.stack.dead_letters().values())
    assert pipeline.stack.runtime.peak_concurrency("IngestFunction") > 1, "the ingest workers never overlapped"

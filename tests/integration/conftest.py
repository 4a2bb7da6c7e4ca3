import io
import json

import h5py
import numpy as np
import pytest

from pcam_local.local_stack import LocalStack

# Every integration test file sets: pytestmark = INTEGRATION. `make test` runs with --dist loadfile: a
# file's tests run in order on one worker, and each worker starts at most one shared session stack.
# (xdist's loadgroup no longer groups under pytest 9: it rewrites a node id attribute pytest 9 ignores.)
INTEGRATION = [pytest.mark.integration]

# Small shards so that even small test files fan out over several conversion invocations.
TEST_PARAMETERS = {"PatchesPerShard": "16"}


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    with LocalStack(parameters=TEST_PARAMETERS, work_dir=tmp_path_factory.mktemp("stack")) as running:
        yield running


def h5_bytes(**datasets) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        for name, value in datasets.items():
            handle.create_dataset(name, data=value)
    return buffer.getvalue()


class Pipeline:
    """What a lab and a downstream system see: drop objects, wait, read results and events."""

    def __init__(self, stack: LocalStack):
        self.stack = stack

    def drop(self, key: str, body: bytes) -> None:
        self.stack.s3.put_object(Bucket=self.stack.bucket, Key=key, Body=body)

    def settle(self) -> None:
        assert self.stack.wait_until_idle(timeout=180), "the pipeline did not go idle"

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
    from pcam_local.synth import synth_split

    return synth_split(50, np.random.default_rng(11))

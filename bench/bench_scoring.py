"""Scoring benchmark (run by `make bench`; not a test).

Reports, from one run:
- gathering throughput: a slide's ``.out`` objects read and parsed per second by
  ``gather_tumour_probabilities`` (32 threads, as in Lambda), as a ratio to the local endpoint's raw GET
  rate for the same objects with the same number of threads, measured before and after (mean is the
  reference);
- the end-to-end wall time of `pcam demo` (synthesis, ingestion, training, evaluation, promotion,
  scoring of two slides), against the 5-minute target.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pcam_local.local_stack import LocalStack
from pcam_pipeline.aws.blob_store import S3BlobStore
from pcam_pipeline.scoring.gathering import GATHER_THREADS, gather_tumour_probabilities

OUTPUTS = 20_000
PREFIX = "scores/bench-slide/bench-job/"
DEMO_TARGET_SECONDS = 300


def write_outputs(stack: LocalStack) -> None:
    from pcam_pipeline.aws.storage import ConcurrentUploader

    with ConcurrentUploader(stack.s3, stack.bucket) as uploader:
        for index in range(OUTPUTS):
            p = (index % 1000) / 1000
            uploader.put(f"{PREFIX}{index:07d}.jpg.out", json.dumps({"prediction": [1 - p, p]}).encode(), "json")


def raw_get_rate(stack: LocalStack) -> float:
    keys = [f"{PREFIX}{index:07d}.jpg.out" for index in range(OUTPUTS)]

    def get(key: str) -> None:
        stack.s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=GATHER_THREADS) as pool:
        list(pool.map(get, keys))
    return OUTPUTS / (time.monotonic() - started)


def gather_rate(stack: LocalStack) -> float:
    started = time.monotonic()
    probabilities = gather_tumour_probabilities(S3BlobStore(stack.bucket, stack.s3), [PREFIX], "", OUTPUTS)
    elapsed = time.monotonic() - started
    assert probabilities.size == OUTPUTS
    return OUTPUTS / elapsed


def demo_seconds(work: Path) -> float:
    started = time.monotonic()
    command = [sys.executable, "-m", "pcam_ops.cli", "demo", "--drop", str(work / "drop"), "--out", str(work / "out")]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if completed.returncode != 0:
        print(completed.stdout[-3000:], completed.stderr[-3000:])
        raise SystemExit("pcam demo failed")
    return elapsed


def main() -> int:
    out = Path("bench-output")
    out.mkdir(exist_ok=True)
    results: dict = {"outputs": OUTPUTS, "threads": GATHER_THREADS}
    with tempfile.TemporaryDirectory() as work, LocalStack(work_dir=Path(work)) as stack:
        write_outputs(stack)
        before = raw_get_rate(stack)
        gathered = gather_rate(stack)
        after = raw_get_rate(stack)
    reference = (before + after) / 2
    results.update(
        raw_get_per_s_before=round(before, 1),
        raw_get_per_s_after=round(after, 1),
        gather_per_s=round(gathered, 1),
        gather_to_raw_get=round(gathered / reference, 3),
    )
    print(
        f"gathering {OUTPUTS} .out objects: {gathered:.0f}/s = {gathered / reference:.2f} x raw GET "
        f"({before:.0f}/s before, {after:.0f}/s after, {GATHER_THREADS} threads)"
    )
    with tempfile.TemporaryDirectory() as work:
        seconds = demo_seconds(Path(work))
    results.update(demo_seconds=round(seconds, 1), demo_to_target=round(seconds / DEMO_TARGET_SECONDS, 3))
    print(f"pcam demo end to end: {seconds:.0f} s = {seconds / DEMO_TARGET_SECONDS:.2f} x the 5-minute target")
    (out / "scoring.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

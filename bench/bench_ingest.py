"""Ingestion benchmark on the local stack (run by `make bench`; not a test).

Reports, from one run against one local stack:
- the local S3 endpoint's raw PUT rate for ~3 KB objects, measured the same way conversion writes
  (two worker processes, each with the pipeline's ConcurrentUploader), before and after the
  conversions (the mean is the reference);
- conversion throughput (patches/s, from drop to "Slide Ready") for an 8k- and a 64k-patch file,
  as a ratio to that raw PUT rate (target >= 0.8);
- peak memory of the conversion workers for each file (target: 64k <= 1.2 x 8k);
- the cost of one shard and what it implies for the 262,144-patch PCam train split on Lambda.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pcam_local.local_stack import LocalStack
from pcam_local.synth import synth_split, write_patch_file

PATCHES_PER_SHARD = 4096
RAW_PUT_OBJECTS = 6000
SIZES = (8192, 65536)
LAMBDA_TIMEOUT = 900
PCAM_TRAIN = 262_144
CLOUD_PATCHES_PER_SHARD = 16_384


def _put_worker(endpoint: str, bucket: str, prefix: str, count: int, queue) -> None:
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    from pcam_pipeline.storage import ConcurrentUploader, s3_client

    body = np.random.default_rng(0).integers(0, 255, 3000, dtype=np.uint8).tobytes()
    client = s3_client()
    started = time.monotonic()
    with ConcurrentUploader(client, bucket) as uploader:
        for index in range(count):
            uploader.put(f"{prefix}{index:07d}.bin", body, "application/octet-stream")
    queue.put(time.monotonic() - started)


def raw_put_rate(stack: LocalStack, processes: int = 2) -> float:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    per_process = RAW_PUT_OBJECTS // processes
    workers = [
        context.Process(target=_put_worker, args=(stack.endpoint, stack.bucket, f"bench/raw/{i}/", per_process, queue))
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    # Each worker times its own uploads (not its start-up), as a conversion worker is timed warm.
    return per_process * processes / max(queue.get() for _ in workers)


def make_slide_file(path: Path, count: int) -> None:
    """Realistic patches (JPEG cost depends on content), tiled from 512 synthetic ones."""
    tile, _ = synth_split(512, np.random.default_rng(1))
    write_patch_file(path, np.resize(tile, (count, 96, 96, 3)))


def convert(stack: LocalStack, path: Path, slide_id: str) -> dict:
    key = f"incoming/slides/{slide_id}.h5"
    stack.drop(path, key)  # the upload itself is not timed: conversion starts when the file is in
    seen = len(stack.runtime.invocations)
    started = time.monotonic()
    assert stack.wait_until_idle(timeout=3600), "pipeline did not finish"
    ready = [e for e in stack.pipeline_events() if e["detail"].get("slide_id") == slide_id]
    assert ready, f"{slide_id} was not announced: {stack.records()}"
    elapsed = time.monotonic() - started
    shards = [i for i in stack.runtime.invocations[seen:] if i.function == "ConvertShardFunction"]
    assert shards and not any(i.failed_records for i in shards)
    return {
        "patches": int(ready[-1]["detail"]["patch_count"]),
        "seconds": elapsed,
        "patches_per_second": ready[-1]["detail"]["patch_count"] / elapsed,
        "peak_worker_mb": max(i.peak_mb for i in shards),
        "shards": len(shards),
        "shard_seconds_mean": float(np.mean([i.seconds for i in shards])),
        "shard_cpu_seconds_mean": float(np.mean([i.cpu_seconds for i in shards])),
    }


def main() -> int:
    out = Path("bench-output")
    out.mkdir(exist_ok=True)
    results: dict = {"patches_per_shard": PATCHES_PER_SHARD}
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalStack(parameters={"PatchesPerShard": str(PATCHES_PER_SHARD)}, work_dir=Path(tmp) / "stack") as stack,
    ):
        warm_up = Path(tmp) / "warm-up.h5"
        make_slide_file(warm_up, 256)
        convert(stack, warm_up, "bench-warm-up")  # start the workers, as a warm Lambda would be
        raw_before = raw_put_rate(stack)
        for count in SIZES:
            path = Path(tmp) / f"slide-{count}.h5"
            make_slide_file(path, count)
            results[str(count)] = convert(stack, path, f"bench-{count}")
        raw_after = raw_put_rate(stack)
        # The local endpoint's rate drifts by ~10 % between measurements: compare with the mean of two.
        results["raw_put_per_second"] = (raw_before + raw_after) / 2
        results["raw_put_per_second_before_after"] = [raw_before, raw_after]
        print(
            f"raw PUT rate (3 KB objects, 2 processes x 32 threads): {raw_before:.0f}/s before, "
            f"{raw_after:.0f}/s after the conversions"
        )
        for count in SIZES:
            result = results[str(count)]
            result["ratio_to_raw_put"] = result["patches_per_second"] / results["raw_put_per_second"]
            print(
                f"{count:>6} patches: {result['patches_per_second']:.0f} patches/s "
                f"({result['ratio_to_raw_put']:.2f} x raw PUT), {result['seconds']:.1f} s, "
                f"peak worker memory {result['peak_worker_mb']:.0f} MB, {result['shards']} shards, "
                f"{result['shard_seconds_mean']:.1f} s/shard ({result['shard_cpu_seconds_mean']:.1f} s CPU)"
            )
    small, large = results[str(SIZES[0])], results[str(SIZES[1])]
    results["memory_ratio_64k_to_8k"] = large["peak_worker_mb"] / small["peak_worker_mb"]
    per_patch_wall = large["shard_seconds_mean"] / PATCHES_PER_SHARD
    per_patch_cpu = large["shard_cpu_seconds_mean"] / PATCHES_PER_SHARD
    shards = -(-PCAM_TRAIN // CLOUD_PATCHES_PER_SHARD)
    results["pcam_train_on_lambda"] = {
        "patches_per_shard": CLOUD_PATCHES_PER_SHARD,
        "shards": shards,
        "shard_seconds_at_local_put_ceiling": per_patch_wall * CLOUD_PATCHES_PER_SHARD,
        "shard_cpu_seconds": per_patch_cpu * CLOUD_PATCHES_PER_SHARD,
        "lambda_timeout": LAMBDA_TIMEOUT,
    }
    print(f"memory 64k / 8k: {results['memory_ratio_64k_to_8k']:.2f} (target <= 1.2)")
    print(
        f"conversion / raw PUT: 8k {small['ratio_to_raw_put']:.2f}, 64k {large['ratio_to_raw_put']:.2f} (target >= 0.8)"
    )
    lam = results["pcam_train_on_lambda"]
    print(
        f"PCam train split (262,144 patches) on Lambda: {lam['shards']} shards of {CLOUD_PATCHES_PER_SHARD}; "
        f"one shard costs {lam['shard_cpu_seconds']:.0f} s CPU and {lam['shard_seconds_at_local_put_ceiling']:.0f} s "
        f"at this machine's local PUT ceiling, vs the {LAMBDA_TIMEOUT} s limit"
    )
    (out / "ingest.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

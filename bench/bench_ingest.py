"""Ingestion benchmark on the local stack (run by `make bench`; not a test).

Reports, from one run against one local stack:
- conversion throughput (patches/s, from drop to "Slide Ready") for an 8k- and a 64k-patch file,
  as a ratio to the PUT ceiling at its best (``put_ceiling.py``: the stack's own S3 and a bare moto
  server, measured after the conversions; target >= 0.8 of the stack's);
- peak memory of the conversion workers for each file (target: 64k <= 1.2 x 8k);
- the cost of one shard and what it implies for the 262,144-patch PCam train split on Lambda.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from put_ceiling import put_ceilings

from pcam_local.local_stack import LocalStack
from pcam_synth.synth import synth_split, write_patch_file

PATCHES_PER_SHARD = 4096
SIZES = (8192, 65536)
LAMBDA_TIMEOUT = 900
PCAM_TRAIN = 262_144
CLOUD_PATCHES_PER_SHARD = 16_384


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
        for count in SIZES:
            path = Path(tmp) / f"slide-{count}.h5"
            make_slide_file(path, count)
            results[str(count)] = convert(stack, path, f"bench-{count}")
        results["put_ceiling"] = ceilings = put_ceilings(stack)
        for count in SIZES:
            result = results[str(count)]
            for name in ("stack", "bare_moto"):
                result[f"ratio_to_{name}_put"] = result["patches_per_second"] / ceilings[name]["best_per_second"]
            print(
                f"{count:>6} patches: {result['patches_per_second']:.0f} patches/s "
                f"({result['ratio_to_stack_put']:.2f} x the stack's PUT ceiling, "
                f"{result['ratio_to_bare_moto_put']:.2f} x bare moto's), {result['seconds']:.1f} s, "
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
        f"conversion / the stack's PUT ceiling: 8k {small['ratio_to_stack_put']:.2f}, "
        f"64k {large['ratio_to_stack_put']:.2f} (target >= 0.8)"
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

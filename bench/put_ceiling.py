"""The local S3's PUT ceiling at its best, for the benchmarks' ratios (a module, not a benchmark).

Plain ``put_object`` of 3 KB objects (a converted patch's size) from 1-2 processes x 8-32 threads,
against a bare moto server (moto's own ``moto.server``, no launcher, no stack, one plain bucket) and
against the local stack's data bucket, alternating over two rounds (the machine's speed drifts); the best
rate of each endpoint is its ceiling. A conversion faster than "the ceiling" means the ceiling was
under-measured, which is why one uploader shape is not enough.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time

import boto3
import numpy as np
from botocore.config import Config

from pcam_local import CREDENTIALS, REGION
from pcam_local.local_stack import LocalStack
from pcam_local.moto_server import free_port

PUT_OBJECTS = int(os.environ.get("PCAM_BENCH_PUTS", 4000))  # fewer for a quick try of a benchmark
PUT_SHAPES = ((1, 8), (1, 16), (2, 16), (2, 32))  # (processes, threads)


def _client(service: str, endpoint: str, config: Config | None = None):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=config,
    )


def _put_worker(endpoint: str, bucket: str, prefix: str, count: int, threads: int, results) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client = _client("s3", endpoint, Config(max_pool_connections=threads))
    body = np.random.default_rng(0).integers(0, 255, 3000, dtype=np.uint8).tobytes()
    client.put_object(Bucket=bucket, Key=f"{prefix}warm-up", Body=body)  # timed warm, as a conversion worker

    def put(index: int) -> None:
        client.put_object(Bucket=bucket, Key=f"{prefix}{index:07d}.jpg", Body=body, ContentType="image/jpeg")

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, range(count)))
    results.put(time.monotonic() - started)


def put_rate(
    endpoint: str, bucket: str, processes: int, threads: int, prefix: str, objects: int = PUT_OBJECTS
) -> float:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    each = objects // processes
    workers = [
        context.Process(target=_put_worker, args=(endpoint, bucket, f"{prefix}/{i}/", each, threads, results))
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return each * processes / max(results.get() for _ in workers)


class BareMoto:
    """moto's own server, as `moto_server` starts it, with one plain bucket."""

    def __enter__(self) -> BareMoto:
        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                _client("s3", self.endpoint).create_bucket(Bucket="bare-moto")
                return self
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def __exit__(self, *exc_info) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


def put_ceilings(stack: LocalStack, objects: int = PUT_OBJECTS) -> dict:
    """{"stack"|"bare_moto": {"best_per_second", "per_shape": {"PxT": [rates]}}}, printed as measured."""
    rates: dict[str, dict[str, list[float]]] = {"bare_moto": {}, "stack": {}}
    with BareMoto() as bare:
        for round_number in range(2):
            for processes, threads in PUT_SHAPES:
                shape = f"{processes}x{threads}"
                prefix = f"bench/put/{round_number}-{shape}"
                for name, endpoint, bucket in (
                    ("bare_moto", bare.endpoint, "bare-moto"),
                    ("stack", stack.endpoint, stack.bucket),
                ):
                    rate = put_rate(endpoint, bucket, processes, threads, prefix, objects)
                    rates[name].setdefault(shape, []).append(rate)
                    print(f"PUT {name:9} {shape:>5} processes x threads: {rate:.0f}/s", flush=True)
    ceilings = {
        name: {"best_per_second": max(max(r) for r in by_shape.values()), "per_shape": by_shape}
        for name, by_shape in rates.items()
    }
    ceilings["stack_to_bare_moto"] = ceilings["stack"]["best_per_second"] / ceilings["bare_moto"]["best_per_second"]
    return ceilings

"""The local AWS endpoint: a moto server process on 127.0.0.1 (``moto_launcher``), and what a client needs to
reach it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from pcam_local import ACCOUNT_CONCURRENCY_VARIABLE, CREDENTIALS, DEFAULT_ACCOUNT_CONCURRENCY, REGION


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    """A separate moto server process (faster than an in-process one) bound to loopback only."""

    def __init__(self, port: int | None = None, log_path: Path | None = None, account_concurrency: int | None = None):
        self.account_concurrency = account_concurrency  # what Lambda's GetAccountSettings answers (default 1,000)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log_path = log_path
        self._process: subprocess.Popen | None = None

    def start(self) -> MotoServer:
        log = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL  # noqa: SIM115
        # glibc keeps freed request buffers (8 MB upload parts) per thread arena: 430 MB after receiving a
        # 450 MB file. Buffers of 1 MB and more mapped apart and two arenas: 230 MB, whatever the file's size.
        env = {
            **os.environ,
            "MOTO_LAMBDA_STUB_ECR": "TRUE",
            "MALLOC_MMAP_THRESHOLD_": "1048576",
            "MALLOC_ARENA_MAX": "2",
            ACCOUNT_CONCURRENCY_VARIABLE: str(self.account_concurrency or DEFAULT_ACCOUNT_CONCURRENCY),
        }
        self._process = subprocess.Popen(
            [sys.executable, "-m", "pcam_local.moto_launcher", str(self.port)], stdout=log, stderr=log, env=env
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto server exited at start (code {self._process.returncode})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto server did not start within 30 s")

    @property
    def pid(self) -> int:
        assert self._process is not None, "the moto server is not started"
        return self._process.pid

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()


def client_environment(endpoint: str) -> dict[str, str]:
    """What any process needs to talk to the local stack with plain boto3 (no local special-casing)."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, **CREDENTIALS}

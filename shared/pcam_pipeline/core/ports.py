"""The ports through which the domain reaches AWS, as Protocols.

The adapters in ``pcam_pipeline.aws`` implement them for AWS; the tests' fakes (``tests/fakes.py``)
implement them in memory. ``make lint`` runs mypy, which checks both against these Protocols, so a fake
cannot drift from the adapter it stands for.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np

from pcam_pipeline.core.job_kinds import JobKind

# A seekable binary file: a local file, an in-memory one, or S3 read in ranges (aws.storage.S3RangeFile).
type ByteFile = BinaryIO | io.RawIOBase


class BlobStore(Protocol):
    """Whole objects of the pipeline's bucket, by key."""

    @property
    def bucket(self) -> str: ...

    def uri(self, key: str) -> str: ...

    def get_bytes(self, key: str) -> bytes: ...

    def put_bytes(self, key: str, body: bytes, content_type: str) -> str | None:
        """The new object's version id (None where the bucket is not versioned)."""

    def put_json(self, key: str, document: Any) -> str | None: ...

    def put_array(self, key: str, array: np.ndarray[Any, Any]) -> str | None: ...

    def get_array(self, key: str) -> np.ndarray[Any, Any]: ...

    def exists(self, key: str) -> bool: ...

    def upload(self, key: str, path: Path, content_type: str) -> str | None: ...

    def download(self, key: str, version: str | None, path: Path) -> None: ...


class JobLauncher(Protocol):
    """Starts SageMaker jobs and asks SageMaker about them."""

    def start(self, kind: JobKind, name: str, request: dict[str, Any]) -> bool:
        """False when SageMaker already has a job of this name (names are derived from inputs)."""

    def create_model(self, request: dict[str, Any]) -> bool: ...

    def describe_training_job(self, name: str) -> dict[str, Any]: ...

    def best_training_job(self, tuning_job: str) -> str: ...


class EventPublisher(Protocol):
    """Announces the pipeline's events on its bus."""

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None: ...


class Alerter(Protocol):
    """Tells operators about a failure that needs them."""

    def alert(self, subject: str, message: str) -> None: ...

"""The ports through which the domain reaches AWS, as Protocols.

The adapters in ``pcam_pipeline.aws`` implement them for AWS; the tests' fakes (``tests/fakes.py``)
implement them in memory. ``make lint`` runs mypy, which checks both against these Protocols, so a fake
cannot drift from the adapter it stands for.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np

from pcam_pipeline.core.job_kinds import JobKind

# A seekable binary file: a local file, an in-memory one, or S3 read in ranges (aws.storage.S3RangeFile).
type ByteFile = BinaryIO | io.RawIOBase


class StoredFile(io.RawIOBase):
    """One object version opened for reading, seekable, with its size: what HDF5 and slide readers are given."""

    size: int


class Uploader(Protocol):
    """Writes many small objects with a bounded number in flight; closing waits for every one (or raises)."""

    def put(self, key: str, body: bytes, content_type: str) -> None: ...


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

    def exists(self, key: str, version: str | None = None) -> bool:
        """Whether the key (or that version of it) is there."""

    def latest_version(self, key: str) -> str | None:
        """The key's current upload (its version id, or its ETag where the bucket keeps no versions); None if
        the key was deleted."""

    def open(self, key: str, version: str | None = None) -> StoredFile:
        """One object version as a seekable file, read in ranges: memory stays bounded whatever its size."""

    def decompress(self, key: str, version: str | None, target_key: str, max_bytes: int | None) -> str | None:
        """A gzip object's plain bytes written to ``target_key``; the new object's version id. Past ``max_bytes``
        of output: InvalidInput, and no object or partial upload is left behind."""

    def copy(self, key: str, version: str | None, target_key: str) -> None:
        """One object version copied to ``target_key`` in the same bucket (server-side)."""
        ...

    def move(self, key: str, version: str | None, target_key: str) -> None:
        """Copy one object version to ``target_key``, then delete the key unless a newer upload replaced it.
        With versioning on, the delete only adds a delete marker: the original stays recoverable."""

    def uploader(self) -> AbstractContextManager[Uploader]: ...

    def upload(self, key: str, path: Path, content_type: str) -> str | None: ...

    def download(self, key: str, version: str | None, path: Path) -> None: ...


class MessageQueue(Protocol):
    """A work queue (SQS): each message is handled at least once by the function that reads the queue."""

    def send(self, bodies: Sequence[str]) -> None:
        """Every message, or an error (RetryableError) naming those not sent."""


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

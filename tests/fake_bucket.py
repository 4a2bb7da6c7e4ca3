"""The bucket and the conversion queue in memory, for the ingestion and model-side unit tests.

``InMemoryBlobStore`` keeps every version of every key, as the deployed (versioned) bucket does: a delete
adds a marker and leaves the versions before it readable. ``tests/adapters/test_blob_store_contract.py`` runs the
same cases on it and on the S3 adapter (moto), so the two cannot drift; mypy checks it against the
``BlobStore`` port.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcam_pipeline.aws.blob_store import MissingObject, array_bytes, array_from_bytes
from pcam_pipeline.core.errors import RetryableError
from pcam_pipeline.core.gzip_stream import GunzipStream
from pcam_pipeline.core.ports import StoredFile


class InMemoryFile(StoredFile):
    def __init__(self, body: bytes):
        super().__init__()
        self._body = io.BytesIO(body)
        self.size = len(body)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._body.readinto(buffer)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._body.seek(offset, whence)

    def tell(self) -> int:
        return self._body.tell()


@dataclass(frozen=True)
class StoredVersion:
    version_id: str
    body: bytes | None  # None: a delete marker
    content_type: str = ""

    @property
    def etag(self) -> str:
        return hashlib.md5(self.body or b"", usedforsecurity=False).hexdigest()


class InMemoryUploader:
    def __init__(self, store: InMemoryBlobStore):
        self._store = store

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self._store.put_bytes(key, body, content_type)


class InMemoryBlobStore:
    def __init__(self, bucket: str = "data"):
        self.bucket = bucket
        self.history: dict[str, list[StoredVersion]] = {}
        self._written = 0

    # ------------------------------------------------------------------ what tests inspect
    def stored_keys(self, prefix: str = "") -> list[str]:
        """The keys whose latest version is an object (not deleted), in order."""
        return sorted(k for k in self.history if k.startswith(prefix) and self._latest(k) is not None)

    def versions(self, key: str) -> list[StoredVersion]:
        return list(self.history.get(key, []))

    def _latest(self, key: str) -> StoredVersion | None:
        versions = self.history.get(key)
        return versions[-1] if versions and versions[-1].body is not None else None

    def _version(self, key: str, version: str | None) -> StoredVersion | None:
        if version is None:
            return self._latest(key)
        found = [v for v in self.history.get(key, []) if v.version_id == version and v.body is not None]
        return found[0] if found else None

    def _add(self, key: str, body: bytes | None, content_type: str = "") -> str:
        self._written += 1
        version = StoredVersion(f"v{self._written}", None if body is None else bytes(body), content_type)
        self.history.setdefault(key, []).append(version)
        return version.version_id

    # ------------------------------------------------------------------ the BlobStore port
    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def get_bytes(self, key: str) -> bytes:
        latest = self._latest(key)
        if latest is None or latest.body is None:
            raise MissingObject(f"{key}: NoSuchKey")
        return latest.body

    def put_bytes(self, key: str, body: bytes, content_type: str) -> str:
        return self._add(key, body, content_type)

    def put_json(self, key: str, document: Any) -> str:
        return self.put_bytes(key, json.dumps(document, default=str).encode(), "application/json")

    def put_array(self, key: str, array: Any) -> str:
        return self.put_bytes(key, array_bytes(array), "application/octet-stream")

    def get_array(self, key: str) -> Any:
        return array_from_bytes(self.get_bytes(key))

    def exists(self, key: str, version: str | None = None) -> bool:
        return self._version(key, version) is not None

    def latest_version(self, key: str) -> str | None:
        latest = self._latest(key)
        return latest.version_id if latest else None

    def open(self, key: str, version: str | None = None) -> InMemoryFile:
        stored = self._version(key, version)
        if stored is None or stored.body is None:
            raise RetryableError(f"cannot read {self.uri(key)}: NoSuchKey")  # as the ranged reader's HEAD fails
        return InMemoryFile(stored.body)

    def decompress(self, key: str, version: str | None, target_key: str, max_bytes: int | None) -> str:
        with self.open(key, version) as compressed:
            plain = io.BufferedReader(GunzipStream(compressed, max_bytes=max_bytes)).read()
        return self.put_bytes(target_key, plain, "application/octet-stream")

    def copy(self, key: str, version: str | None, target_key: str) -> None:
        with self.open(key, version) as source:
            self.put_bytes(target_key, source.read(), "application/octet-stream")

    def move(self, key: str, version: str | None, target_key: str) -> None:
        self.copy(key, version, target_key)
        if version is None or self.latest_version(key) == version:
            self._add(key, None)

    @contextmanager
    def uploader(self) -> Iterator[InMemoryUploader]:
        yield InMemoryUploader(self)

    def upload(self, key: str, path: Path, content_type: str) -> str:
        return self.put_bytes(key, path.read_bytes(), content_type)

    def download(self, key: str, version: str | None, path: Path) -> None:
        with self.open(key, version) as stored:
            path.write_bytes(stored.read())


class InMemoryQueue:
    """The conversion queue: messages kept in order until a test takes them."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send(self, bodies: Sequence[str]) -> None:
        self.bodies.extend(bodies)

    def take_all(self) -> list[dict[str, Any]]:
        taken, self.bodies = self.bodies, []
        return [json.loads(body) for body in taken]

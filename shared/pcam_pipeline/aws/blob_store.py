"""The data bucket behind the BlobStore port: objects by key and version, ranged reads, moves, S3 URIs."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from botocore.exceptions import ClientError
from numpy.typing import NDArray

from pcam_pipeline.aws import storage
from pcam_pipeline.core.errors import RetryableError


class MissingObject(LookupError):
    """The object is not there (or cannot be read); callers decide whether that is a failed job."""


def array_bytes(array: NDArray[Any]) -> bytes:
    """An array as a .npy file: numbers only, read back without pickle."""
    body = io.BytesIO()
    np.save(body, array, allow_pickle=False)
    return body.getvalue()


def array_from_bytes(body: bytes) -> NDArray[Any]:
    array: NDArray[Any] = np.load(io.BytesIO(body), allow_pickle=False)
    return array


class S3BlobStore:
    def __init__(self, bucket: str, s3: storage.AwsClient | None = None):
        self.bucket = bucket
        self._s3 = s3 or storage.s3_client()

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def get_bytes(self, key: str) -> bytes:
        try:
            body: bytes = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            return body
        except ClientError as exc:
            raise MissingObject(f"{key}: {exc}") from exc

    def put_bytes(self, key: str, body: bytes, content_type: str) -> str | None:
        """Write the object; its S3 version id (None where the bucket is not versioned)."""
        try:
            written = self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        except ClientError as exc:
            raise RetryableError(f"cannot write s3://{self.bucket}/{key}: {exc}") from exc
        version: str | None = written.get("VersionId")
        return version

    def put_json(self, key: str, document: Any) -> str | None:
        return self.put_bytes(key, json.dumps(document, indent=2, default=str).encode(), "application/json")

    def put_array(self, key: str, array: NDArray[Any]) -> str | None:
        return self.put_bytes(key, array_bytes(array), "application/octet-stream")

    def get_array(self, key: str) -> NDArray[Any]:
        return array_from_bytes(self.get_bytes(key))

    def exists(self, key: str, version: str | None = None) -> bool:
        return storage.object_exists(self._s3, self.bucket, key, version)

    def latest_version(self, key: str) -> str | None:
        return storage.latest_version(self._s3, self.bucket, key)

    def decompress(self, key: str, version: str | None, target_key: str, max_bytes: int | None) -> str | None:
        storage.decompress_to(self._s3, self.bucket, key, version, target_key, max_bytes)
        return storage.version_of(self._s3, self.bucket, target_key)

    def copy(self, key: str, version: str | None, target_key: str) -> None:
        storage.copy_object(self._s3, self.bucket, key, version, target_key)

    def move(self, key: str, version: str | None, target_key: str) -> None:
        storage.move_object(self._s3, self.bucket, key, version, target_key)

    def uploader(self) -> storage.ConcurrentUploader:
        return storage.ConcurrentUploader(self._s3, self.bucket)

    def download(self, key: str, version: str | None, path: Path) -> None:
        """One object version into a local file (multipart ranged GETs, bounded memory)."""
        try:
            self._s3.download_file(self.bucket, key, str(path), ExtraArgs={"VersionId": version} if version else None)
        except ClientError as exc:
            raise RetryableError(f"cannot read s3://{self.bucket}/{key}: {exc}") from exc

    def upload(self, key: str, path: Path, content_type: str) -> str | None:
        """A local file as the object (multipart when large); its version id (None: the bucket keeps none)."""
        try:
            self._s3.upload_file(str(path), self.bucket, key, ExtraArgs={"ContentType": content_type})
        except ClientError as exc:
            raise RetryableError(f"cannot write s3://{self.bucket}/{key}: {exc}") from exc
        return storage.version_of(self._s3, self.bucket, key)

    def open(self, key: str, version: str | None = None) -> storage.S3RangeFile:
        """A seekable file of one object version, read with ranged GETs (for HDF5)."""
        return storage.S3RangeFile(self._s3, self.bucket, key, version)

"""S3 I/O for the data bucket: ranged reads, concurrent uploads, streaming decompression, moves."""

from __future__ import annotations

import io
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pcam_pipeline.core.errors import RetryableError
from pcam_pipeline.core.gzip_stream import GunzipStream
from pcam_pipeline.core.ports import StoredFile

# A boto3 client. boto3 ships no type stubs (and none are installed): its calls are checked at run time by
# botocore's service models and request_rules instead, and what they return is typed where it is read.
type AwsClient = Any

# Adaptive retries back off on S3 503 SlowDown; the pool matches the upload concurrency.
UPLOAD_CONCURRENCY = 32
S3_CONFIG = Config(max_pool_connections=UPLOAD_CONCURRENCY + 4, retries={"mode": "adaptive", "max_attempts": 10})


def s3_client() -> AwsClient:
    return boto3.client("s3", config=S3_CONFIG)


class S3RangeFile(StoredFile):
    """A read-only, seekable view of one S3 object version, fetched with ranged GETs.

    Small reads (HDF5 metadata, chunk indexes) are served from a bounded cache of blocks;
    large reads (patch slices) go straight to S3, so memory stays bounded whatever the file size.
    """

    def __init__(
        self,
        client: AwsClient,
        bucket: str,
        key: str,
        version: str | None = None,
        block_size: int = 1 << 20,
        max_blocks: int = 16,
    ):
        super().__init__()
        self._client, self._bucket, self._key, self._version = client, bucket, key, version
        self._block_size, self._max_blocks = block_size, max_blocks
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._pos = 0
        self.size = int(self._head()["ContentLength"])
        self.bytes_fetched = 0

    def _version_args(self) -> dict[str, str]:
        return {"VersionId": self._version} if self._version else {}

    def _head(self) -> dict[str, Any]:
        try:
            head: dict[str, Any] = self._client.head_object(Bucket=self._bucket, Key=self._key, **self._version_args())
            return head
        except ClientError as exc:
            raise RetryableError(f"cannot read s3://{self._bucket}/{self._key}: {exc}") from exc

    def _get(self, start: int, stop: int) -> bytes:
        try:
            body: bytes = self._client.get_object(
                Bucket=self._bucket, Key=self._key, Range=f"bytes={start}-{stop - 1}", **self._version_args()
            )["Body"].read()
        except (ClientError, BotoCoreError) as exc:  # h5py passes it on unchanged: retried, never "damaged"
            raise RetryableError(f"cannot read s3://{self._bucket}/{self._key} [{start}:{stop}]: {exc}") from exc
        self.bytes_fetched += len(body)
        return body

    def _block(self, index: int) -> bytes:
        if index in self._blocks:
            self._blocks.move_to_end(index)
            return self._blocks[index]
        start = index * self._block_size
        data = self._get(start, min(start + self._block_size, self.size))
        self._blocks[index] = data
        if len(self._blocks) > self._max_blocks:
            self._blocks.popitem(last=False)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:  # a writable buffer (collections.abc.Buffer)
        view = memoryview(buffer).cast("B")
        stop = min(self._pos + len(view), self.size)
        if stop <= self._pos:
            return 0
        wanted = stop - self._pos
        if wanted >= self._block_size:
            view[:wanted] = self._get(self._pos, stop)
        else:
            filled = 0
            while filled < wanted:
                pos = self._pos + filled
                block = self._block(pos // self._block_size)
                offset = pos % self._block_size
                take = min(wanted - filled, len(block) - offset)
                view[filled : filled + take] = block[offset : offset + take]
                filled += take
        self._pos = stop
        return wanted


class ConcurrentUploader:
    """Puts many small objects with a bounded number in flight (memory stays bounded)."""

    def __init__(self, client: AwsClient, bucket: str, concurrency: int = UPLOAD_CONCURRENCY):
        self._client, self._bucket = client, bucket
        self._pool = ThreadPoolExecutor(max_workers=concurrency)
        self._pending: list[Future[Any]] = []
        self._limit = concurrency * 4

    def put(self, key: str, body: bytes, content_type: str) -> None:
        if len(self._pending) >= self._limit:
            self._drain(keep=self._limit // 2)
        self._pending.append(
            self._pool.submit(
                self._client.put_object, Bucket=self._bucket, Key=key, Body=body, ContentType=content_type
            )
        )

    def _drain(self, keep: int = 0) -> None:
        done_first = self._pending[: len(self._pending) - keep]
        wait(done_first)
        self._pending = self._pending[len(done_first) :]
        for future in done_first:
            exc = future.exception()
            if exc is not None:
                raise RetryableError(f"upload to s3://{self._bucket} failed: {exc}") from exc

    def close(self) -> None:
        try:
            self._drain()
        finally:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> ConcurrentUploader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def decompress_to(
    client: AwsClient, bucket: str, key: str, version: str | None, target_key: str, max_bytes: int | None = None
) -> None:
    """Stream-decompress a .gz object into ``target_key`` (multipart upload, bounded memory).

    Past ``max_bytes`` of output it stops with InvalidInput; the transfer aborts its multipart upload, so no
    partial object is left behind."""
    from boto3.s3.transfer import TransferConfig

    extra = {"VersionId": version} if version else {}
    try:
        body = client.get_object(Bucket=bucket, Key=key, **extra)["Body"]
        stream = io.BufferedReader(GunzipStream(body, max_bytes=max_bytes), buffer_size=8 << 20)
        client.upload_fileobj(
            stream, bucket, target_key, Config=TransferConfig(multipart_chunksize=64 << 20, max_concurrency=4)
        )
    except ClientError as exc:
        raise RetryableError(f"cannot decompress s3://{bucket}/{key}: {exc}") from exc


# Server-side copies in parts of 256 MiB, 32 at once: a 20 GiB slide is 80 UploadPartCopy calls, not 2,560.
COPY_TRANSFER = TransferConfig(multipart_threshold=256 << 20, multipart_chunksize=256 << 20, max_concurrency=32)


def copy_object(client: AwsClient, bucket: str, key: str, version: str | None, target_key: str) -> None:
    """Copy one object version to ``target_key``, server-side (boto3's managed copy: UploadPartCopy in parts
    past 256 MiB, so past CopyObject's 5 GB)."""
    source = {"Bucket": bucket, "Key": key, **({"VersionId": version} if version else {})}
    try:
        client.copy(source, bucket, target_key, Config=COPY_TRANSFER)
    except ClientError as exc:
        raise RetryableError(f"cannot copy s3://{bucket}/{key} to {target_key}: {exc}") from exc


def move_object(client: AwsClient, bucket: str, key: str, version: str | None, target_key: str) -> None:
    """Copy one object version to ``target_key`` (multipart for large files), then delete the original.

    With versioning on, the delete only adds a delete marker: the original version stays recoverable.
    """
    copy_object(client, bucket, key, version, target_key)
    try:
        if version is None or latest_version(client, bucket, key) == version:  # never a newer upload of the key
            client.delete_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        raise RetryableError(f"cannot move s3://{bucket}/{key} to {target_key}: {exc}") from exc


def _head(client: AwsClient, bucket: str, key: str, version: str | None = None) -> dict[str, Any] | None:
    """The object's metadata; None if it (or that version of it) is not there."""
    try:
        head: dict[str, Any] = client.head_object(Bucket=bucket, Key=key, **({"VersionId": version} if version else {}))
        return head
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound", "NoSuchVersion", "405"):
            return None
        raise RetryableError(f"cannot read s3://{bucket}/{key}: {exc}") from exc


def latest_version(client: AwsClient, bucket: str, key: str) -> str | None:
    """The key's current upload: its version id (its ETag where the bucket keeps no versions); None if deleted."""
    head = _head(client, bucket, key)
    if head is None:
        return None
    version: str | None = head.get("VersionId")
    return version if version not in (None, "null") else str(head["ETag"]).strip('"')


def version_of(client: AwsClient, bucket: str, key: str) -> str | None:
    """The version id of what was just written at ``key`` (None where the bucket keeps no versions)."""
    head = _head(client, bucket, key)
    if head is None:
        raise RetryableError(f"s3://{bucket}/{key} is not there just after it was written")
    written: str | None = head.get("VersionId")
    return written


def object_exists(client: AwsClient, bucket: str, key: str, version: str | None = None) -> bool:
    return _head(client, bucket, key, version) is not None

"""Object writes in the local S3 as S3 makes them: multipart uploads completed on disk, one event per write.

moto's CompleteMultipartUpload joins every part in a bytearray, copies it to bytes, and (for a
full-object checksum) keeps a third copy to checksum: 14.7 GB resident for the 7.25 GB PCam train split.
Here the parts are copied one at a time into a temporary file that becomes the object's storage (moto
already keeps each part of 5 MB or more in a temporary file), and the checksum is computed as the
bytes stream past. Memory stays near one part whatever the object's size.

moto also stores the completed object through its PutObject path, which sends an
``ObjectCreated:Put`` notification before its own ``ObjectCreated:CompleteMultipartUpload``: every
multipart drop reached the pipeline twice. On S3 an object is created once, and its one "Object Created"
event names the API that created it in ``reason``: PutObject, POST Object, CopyObject or
CompleteMultipartUpload (Amazon S3 User Guide, "Using EventBridge").

moto also sends "Object Tags Added" for every PutObject, CopyObject and CompleteMultipartUpload (it
stores their tags through its PutObjectTagging path). S3 maps only PutObjectTagging to "Object Tags
Added" (Amazon S3 User Guide, "Amazon EventBridge mapping and troubleshooting"); the extra event cost
every PUT a second pass over the bus's rules, a tenth of the local S3's PUT rate.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import hashlib
import tempfile

from moto.s3 import notifications
from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
from moto.s3.models import FakeKey, FakeMultipart, S3Backend
from moto.s3.responses import S3Response
from moto.s3.utils import compute_checksum
from moto.settings import S3_UPLOAD_PART_MIN_SIZE, get_s3_default_key_buffer_size

_COPY_CHUNK = 8 << 20


class _StreamedChecksum:
    """A checksum fed chunk by chunk; the same value moto's ``compute_checksum`` gives for the whole body
    (moto falls back to CRC32 when the optional CRC32C / CRT libraries are missing)."""

    def __init__(self, algorithm: str):
        self._hash = hashlib.sha1() if algorithm == "SHA1" else hashlib.sha256() if algorithm == "SHA256" else None
        self._crc = self._crc_function(algorithm) if self._hash is None else None
        self._value = 0
        self._width = 8 if algorithm == "CRC64NVME" and self._crc is not binascii.crc32 else 4

    @staticmethod
    def _crc_function(algorithm: str):
        try:
            if algorithm == "CRC32C":
                import crc32c

                return crc32c.crc32c
            if algorithm == "CRC64NVME":
                from awscrt import checksums

                return checksums.crc64nvme
        except ImportError:
            pass
        return binascii.crc32

    def update(self, chunk: bytes) -> None:
        if self._hash is not None:
            self._hash.update(chunk)
        else:
            self._value = self._crc(chunk, self._value)

    def digest(self) -> bytes:
        return self._hash.digest() if self._hash is not None else self._value.to_bytes(self._width, "big")


def _assemble(multipart: FakeMultipart, body) -> tuple[tempfile.SpooledTemporaryFile, int, str, tuple | None]:
    """The parts named in the request, in order, copied into one temporary file: (file, size, ETag,
    checksum details). Refuses as S3 does: an unknown part or ETag, a non-final part under 5 MB, no parts."""
    algorithm = multipart.metadata.get("x-amz-checksum-algorithm") or "CRC64NVME"
    checksum_type = multipart.metadata.get("x-amz-checksum-type") or (
        "FULL_OBJECT" if algorithm == "CRC64NVME" else "COMPOSITE"
    )
    full_object = _StreamedChecksum(algorithm)
    part_checksums = bytearray()
    part_md5s = bytearray()
    # The object's storage from here on (closed with the object); a context manager would close it now.
    assembled = tempfile.SpooledTemporaryFile(max_size=get_s3_default_key_buffer_size())  # noqa: SIM115
    size = 0
    previous: FakeKey | None = None
    try:
        for number, etag in body:
            part = multipart.parts.get(number)
            if part is None or part.etag.strip('"') != etag.strip('"'):
                raise InvalidPart()
            if previous is not None and previous.contentsize < S3_UPLOAD_PART_MIN_SIZE:
                raise EntityTooSmall()
            part_md5s.extend(bytes.fromhex(part.etag.strip('"')))
            checksum = full_object if checksum_type == "FULL_OBJECT" else _StreamedChecksum(algorithm)
            with part.lock:
                part._value_buffer.seek(0)
                while chunk := part._value_buffer.read(_COPY_CHUNK):
                    assembled.write(chunk)
                    checksum.update(chunk)
                    size += len(chunk)
            if checksum is not full_object:  # COMPOSITE: the checksum of the parts' checksums
                part_checksums.extend(checksum.digest())
            previous = part
        if previous is None:
            raise MalformedXML()
    except Exception:
        assembled.close()
        raise
    parts = len(part_md5s) // 16
    etag = f"{hashlib.md5(bytes(part_md5s)).hexdigest()}-{parts}"  # noqa: S324 - S3's multipart ETag
    if checksum_type == "COMPOSITE":
        details = (checksum_type, compute_checksum(bytes(part_checksums), algorithm).decode(), parts)
    else:
        details = (checksum_type, base64.b64encode(full_object.digest()).decode(), 1)
    return assembled, size, etag, details


def complete_multipart_upload(self: S3Backend, bucket_name: str, multipart_id: str, body) -> FakeKey:
    """moto's ``S3Backend.complete_multipart_upload`` with the object assembled on disk and one event."""
    bucket = self.get_bucket(bucket_name)
    multipart = bucket.multiparts[multipart_id]
    assembled, size, etag, (checksum_type, checksum_value, checksum_parts) = _assemble(multipart, body)
    del bucket.multiparts[multipart_id]
    key = self.put_object(
        bucket_name,
        multipart.key_name,
        b"",
        storage=multipart.storage,
        etag=etag,
        multipart=multipart,
        encryption=multipart.sse_encryption,
        kms_key_id=multipart.kms_key_id,
        disable_notification=True,  # the one event is CompleteMultipartUpload's, below
    )
    with key.lock:
        key._value_buffer.close()
        key._value_buffer = assembled
        key.contentsize = size
    key.set_metadata(multipart.metadata)
    key.checksum_algorithm = multipart.metadata.get("x-amz-checksum-algorithm")
    key.checksum_type, key.checksum_value, key.checksum_parts = checksum_type, checksum_value, checksum_parts
    self.put_object_tagging(key, multipart.tags)
    self.put_object_acl(bucket_name=bucket_name, key_name=key.name, acl=multipart.acl, disable_notification=True)
    notifications.send_event(
        self.account_id,
        notifications.S3NotificationEvent.OBJECT_CREATED_COMPLETE_MULTIPART_UPLOAD_EVENT,
        bucket,
        bucket.keys.get(multipart.key_name),
    )
    return key


_IN_PUT_OBJECT_TAGGING = contextvars.ContextVar("in_put_object_tagging", default=False)


def _tags_added_only_by_put_object_tagging() -> None:
    send_event, handle_put_object_tagging = notifications.send_event, S3Response.put_object_tagging

    def send_s3_event(account_id, event_name, bucket, key) -> None:
        tags_added = event_name == notifications.S3NotificationEvent.OBJECT_TAGGING_PUT_EVENT
        if not tags_added or _IN_PUT_OBJECT_TAGGING.get():
            send_event(account_id, event_name, bucket, key)

    def put_object_tagging(self):
        token = _IN_PUT_OBJECT_TAGGING.set(True)
        try:
            return handle_put_object_tagging(self)
        finally:
            _IN_PUT_OBJECT_TAGGING.reset(token)

    notifications.send_event = send_s3_event
    S3Response.put_object_tagging = put_object_tagging


def install() -> None:
    S3Backend.complete_multipart_upload = complete_multipart_upload
    _tags_added_only_by_put_object_tagging()

"""Each lab's status objects and index in the data bucket (``core/lab_status``), written from the state table's
stream. The index is shared by every item of a lab, and stream shards are handled at once: it is changed with
S3 conditional writes (If-Match on the ETag read, If-None-Match for the first), read again on a conflict."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from pcam_pipeline.aws import storage
from pcam_pipeline.core.errors import RetryableError
from pcam_pipeline.core.lab_status import StatusEntry, index_key, index_with, status_entry
from pcam_pipeline.state.table import now_iso

INDEX_ATTEMPTS = 10  # conflicting writers of one lab's index; past them the stream delivers the record again
CONFLICTS = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


class LabStatusBoard:
    def __init__(self, bucket: str, s3: storage.AwsClient | None = None):
        self._bucket = bucket
        self._s3 = s3 or storage.s3_client()

    def record_changed(self, item: dict[str, Any]) -> str | None:
        """Write the status of the changed record's item, if it is a lab's, and its entry in the lab's index.
        The status object's key, or None for records that are no lab's item. Idempotent."""
        entry = status_entry(item)
        if entry is None:
            return None
        self._put(entry.key, entry.document)
        self._index(entry)
        return entry.key

    def _put(self, key: str, document: dict[str, Any], **condition: str) -> None:
        body = json.dumps(document, indent=2, default=str).encode()
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="application/json", **condition)

    def _index(self, entry: StatusEntry) -> None:
        key = index_key(entry.lab)
        for _ in range(INDEX_ATTEMPTS):
            current, etag = self._read(key)
            if current is not None and current.get("items", {}).get(entry.name) == entry.index_entry():
                return  # a redelivery: already there
            condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
            try:
                self._put(key, index_with(current, entry, now_iso()), **condition)
                return
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in CONFLICTS:
                    raise
        raise RetryableError(f"the index of lab {entry.lab} kept changing under {INDEX_ATTEMPTS} writes")

    def _read(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        try:
            found = self._s3.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None, None
            raise
        return json.loads(found["Body"].read()), found["ETag"]

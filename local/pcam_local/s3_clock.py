"""The local S3's clock, which tests can move forward, and the times S3 reports from it.

Lifecycle rules act on the times S3 records: an object's LastModified, a delete marker's, a multipart
upload's Initiated. To let a test live through weeks in minutes, every one of those times in the local S3
is the real time plus an offset the test sets (``POST /_local/clock`` with ``{"offset_seconds": …}``).
SQS, DynamoDB and EventBridge keep real time: messages in flight are not aged by a jump.

moto also answers ListMultipartUploads with a fixed "2010-11-10T20:48:33Z" for every upload; here each
upload reports when it was started, as S3 does, so that AbortIncompleteMultipartUpload can be applied.
"""

from __future__ import annotations

import datetime
import json
import threading

CLOCK_PATH = "/_local/clock"

_offset = datetime.timedelta(0)
_initiated: dict[str, datetime.datetime] = {}
_lock = threading.Lock()


def now() -> datetime.datetime:
    """moto's utcnow (a naive UTC datetime), moved by the offset."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + _offset


def set_clock(environ, start_response):
    """Answer ``POST /_local/clock``; None for any other request."""
    if environ.get("PATH_INFO") != CLOCK_PATH or environ.get("REQUEST_METHOD") != "POST":
        return None
    global _offset
    length = int(environ.get("CONTENT_LENGTH") or 0)
    offset = float(json.loads(environ["wsgi.input"].read(length))["offset_seconds"])
    with _lock:
        _offset = datetime.timedelta(seconds=offset)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"offset_seconds": offset, "now": now().isoformat() + "Z"}).encode()]


def install() -> None:
    from moto.s3 import models
    from moto.s3.models import FakeMultipart
    from moto.s3.responses import S3Response

    models.utcnow = now  # LastModified of keys and delete markers

    started = FakeMultipart.__init__

    def start_and_remember(self, *args, **kwargs) -> None:
        started(self, *args, **kwargs)
        _initiated[self.id] = now()

    FakeMultipart.__init__ = start_and_remember

    listed = S3Response.list_multipart_uploads

    def list_with_initiation_times(self):
        serialized = self.serialized

        def with_times(action_result):
            for upload in action_result.result["Uploads"]:
                when = _initiated.get(upload["UploadId"])
                if when is not None:
                    upload["Initiated"] = when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
            return serialized(action_result)

        self.serialized = with_times
        try:
            return listed(self)
        finally:
            del self.serialized

    S3Response.list_multipart_uploads = list_with_initiation_times

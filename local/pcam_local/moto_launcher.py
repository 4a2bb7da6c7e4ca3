"""Runs moto server with AWS's atomicity and ranged-read cost for the calls the pipeline rests on.

moto server handles requests on many threads without locks, so two concurrent DynamoDB conditional
updates, or two SQS receives, can interleave in ways AWS never allows (a lost ADD, a message handed
out twice or not at all). This launcher serialises DynamoDB, SQS and EventBridge requests, and S3
writes under incoming/ (which deliver events to SQS), while S3 object reads and writes of the data
path stay concurrent for throughput.

moto also answers a ranged GET by reading the whole object and slicing it (1.2 s for 14 MB of a
1.8 GB file, measured), where S3's cost follows the range. Conversion reads big HDF5 files in ranges,
so this launcher serves single-range GETs of stored objects itself, reading only the range.

Multipart uploads are completed on disk, and each write sends the one event S3 sends (``s3_writes``);
small object bodies are kept on disk too (``s3_bodies``), so memory does not grow with a dataset.

The S3 times it reports follow a clock tests can move (``s3_clock``), for lifecycle rules.

Every change to moto's own code is listed, with why, in ``moto_patches``, which refuses a moto version other
than the one they were written for.

Usage: python -m pcam_local.moto_launcher PORT
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from urllib.parse import parse_qs, unquote

from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.s3.models import FakeKey, s3_backends
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple

from pcam_local import ACCOUNT_CONCURRENCY_VARIABLE, DEFAULT_ACCOUNT_CONCURRENCY, moto_patches, s3_clock

_SERIALISED_TARGETS = ("DynamoDB", "AmazonSQS", "AWSEvents")
_SINGLE_RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")


def ranged_get(environ, start_response):
    """Answer ``GET /bucket/key`` with ``Range: bytes=a-b`` from the stored bytes; None to let moto answer."""
    match = _SINGLE_RANGE.match(environ.get("HTTP_RANGE", ""))
    if environ.get("REQUEST_METHOD") != "GET" or not match or environ.get("HTTP_X_AMZ_TARGET"):
        return None
    bucket_name, _, key_name = environ.get("RAW_URI", "").split("?", 1)[0].lstrip("/").partition("/")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if not key_name or set(query) - {"versionId", "x-id"}:
        return None
    try:
        key = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object(
            unquote(bucket_name), unquote(key_name), version_id=query.get("versionId", [None])[0]
        )
    except Exception:  # unknown bucket and the like: moto gives the proper error
        return None
    begin, end = int(match.group(1)), int(match.group(2))
    if not isinstance(key, FakeKey) or begin > end or begin >= key.size:
        return None
    end = min(end, key.size - 1)
    with key.lock:
        key._value_buffer.seek(begin)
        body = key._value_buffer.read(end - begin + 1)
    headers = [
        ("Content-Type", key.metadata.get("Content-Type", "binary/octet-stream")),
        ("Content-Length", str(len(body))),
        ("Content-Range", f"bytes {begin}-{end}/{key.size}"),
        ("ETag", key.etag),
        ("Last-Modified", key.last_modified_RFC1123),
        ("Accept-Ranges", "bytes"),
    ]
    if key.version_id and key.version_id != "null":
        headers.append(("x-amz-version-id", str(key.version_id)))
    start_response("206 Partial Content", headers)
    return [body]


def lambda_account_settings(environ, start_response):
    """Answer Lambda's GetAccountSettings (moto does not) with the account concurrency the local stack simulates;
    None for any other request."""
    if environ.get("REQUEST_METHOD") != "GET" or not environ.get("PATH_INFO", "").startswith(
        "/2016-08-19/account-settings"
    ):
        return None
    limit = int(os.environ.get(ACCOUNT_CONCURRENCY_VARIABLE, DEFAULT_ACCOUNT_CONCURRENCY))
    body = {
        "AccountLimit": {
            "TotalCodeSize": 80 << 30,
            "CodeSizeUnzipped": 250 << 20,
            "CodeSizeZipped": 50 << 20,
            "ConcurrentExecutions": limit,
            "UnreservedConcurrentExecutions": limit,
        },
        "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": 0},
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


class SerialisedControlPlane:
    def __init__(self, app):
        self._app = app
        self._lock = threading.Lock()

    def _needs_lock(self, environ) -> bool:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(_SERIALISED_TARGETS):
            return True
        path = environ.get("PATH_INFO", "")
        return environ.get("REQUEST_METHOD") in ("PUT", "POST", "DELETE") and "/incoming/" in path

    def __call__(self, environ, start_response):
        served = (
            ranged_get(environ, start_response)
            or s3_clock.set_clock(environ, start_response)
            or lambda_account_settings(environ, start_response)
        )
        if served is not None:
            return served
        if not self._needs_lock(environ):
            return self._app(environ, start_response)
        with self._lock:
            return list(self._app(environ, start_response))


class RefusalsLogged(MotoRequestHandler):
    """Logs the requests the server refused or failed (4xx, 5xx) and not the hundreds of thousands it
    served: one log line per request under one lock took a tenth of the server's time in a conversion."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if str(code)[:1] in ("4", "5"):
            super().log_request(code, size)


def main() -> None:
    moto_patches.install_all()
    port = int(sys.argv[1])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", port, SerialisedControlPlane(app), threaded=True, request_handler=RefusalsLogged)


if __name__ == "__main__":
    main()

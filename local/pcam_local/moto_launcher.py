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

It stops moto from keeping every model object it ever made, and keeps a scheduled rule from matching
events (moto matches a rule without a pattern to every event).

Usage: python -m pcam_local.moto_launcher PORT
"""

from __future__ import annotations

import gc
import json
import os
import re
import sys
import threading
import uuid
from urllib.parse import parse_qs, unquote

from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.s3.models import FakeKey, s3_backends
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple

from pcam_local import ACCOUNT_CONCURRENCY_VARIABLE, DEFAULT_ACCOUNT_CONCURRENCY, s3_bodies, s3_clock, s3_writes

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


def scheduled_rules_match_no_events() -> None:
    """An EventBridge rule with a ScheduleExpression and no EventPattern fires on its schedule only; moto's
    empty pattern matches every event on the bus, which would copy every S3 and SageMaker event to the
    scheduled rule's targets (the local stack fires schedules itself: ``schedules.py``)."""
    from moto.events.models import Rule

    send_to_targets = Rule.send_to_targets

    def send_unless_scheduled(self, original_event, transform_input=True):
        if self.scheduled_expression and not self.event_pattern.dump():
            return None
        return send_to_targets(self, original_event, transform_input)

    Rule.send_to_targets = send_unless_scheduled


def archives_and_replays_as_eventbridge_keeps_them() -> None:
    """moto's CloudFormation hands an Archive's EventPattern object to code that expects JSON text (the stack
    fails), and its replays send every archived event to every rule of the bus, whatever the replay's time
    window and FilterArns (EventBridge's StartReplay sends only events of the window, only to those rules)."""
    from datetime import datetime

    from moto.core.utils import unix_time
    from moto.events.models import Archive, Replay, ReplayState, events_backends

    from_template = Archive.create_from_cloudformation_json.__func__

    def create_with_pattern_text(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        if isinstance(properties.get("EventPattern"), dict):
            properties["EventPattern"] = json.dumps(properties["EventPattern"])
        return from_template(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)

    Archive.create_from_cloudformation_json = classmethod(create_with_pattern_text)

    def replay_events(self, archive) -> None:
        bus = events_backends[self.account_id][self.region].describe_event_bus(self.destination["Arn"].split("/")[-1])
        wanted = set(self.destination.get("FilterArns") or [])
        start, end = float(self.event_start_time), float(self.event_end_time)
        for event in archive.events:
            sent = event["time"]  # moto keeps an epoch number, EventBridge sends ISO 8601
            sent_at = float(sent) if not isinstance(sent, str) else datetime.fromisoformat(sent).timestamp()
            if not start <= sent_at <= end:
                continue
            for rule in bus.rules.values():
                if not wanted or rule.arn in wanted:
                    rule.send_to_targets(dict(event, **{"id": str(uuid.uuid4()), "replay-name": self.name}), False)
        self.state = ReplayState.COMPLETED
        self.end_time = unix_time()

    Replay.replay_events = replay_events


def models_are_not_tracked() -> None:
    """moto appends every model object it ever creates (each S3 object and its ACL, each SQS message, each
    DynamoDB item) to a class-wide list, for its reset API, so nothing is ever freed: hundreds of bytes per
    object even after it is deleted or replaced. The local stack never resets its server."""
    from moto.core.common_models import BaseModel

    BaseModel.__new__ = staticmethod(lambda cls, *args, **kwargs: object.__new__(cls))


class RefusalsLogged(MotoRequestHandler):
    """Logs the requests the server refused or failed (4xx, 5xx) and not the hundreds of thousands it
    served: one log line per request under one lock took a tenth of the server's time in a conversion."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if str(code)[:1] in ("4", "5"):
            super().log_request(code, size)


def main() -> None:
    # moto's response objects keep each request's body in reference cycles until the collector runs. Python 3.13
    # raised the youngest generation's threshold from 700 to 2,000 allocations, so a 512 MB multipart upload's
    # 8 MB parts piled up to 300 MB before a collection (tests/integration/test_local_s3.py); collect as 3.12 did.
    gc.set_threshold(700, 10, 10)
    scheduled_rules_match_no_events()
    archives_and_replays_as_eventbridge_keeps_them()
    models_are_not_tracked()
    s3_writes.install()
    s3_bodies.install()
    s3_clock.install()
    port = int(sys.argv[1])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", port, SerialisedControlPlane(app), threaded=True, request_handler=RefusalsLogged)


if __name__ == "__main__":
    main()

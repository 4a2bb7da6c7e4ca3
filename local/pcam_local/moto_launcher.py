"""Runs moto server with AWS's atomicity for the calls the pipeline's correctness rests on.

moto server handles requests on many threads without locks, so two concurrent DynamoDB conditional
updates, or two SQS receives, can interleave in ways AWS never allows (a lost ADD, a message handed
out twice or not at all). This launcher serialises DynamoDB, SQS and EventBridge requests, and S3
writes under incoming/ (which deliver events to SQS), while S3 object reads and writes of the data
path stay concurrent for throughput.

Usage: python -m pcam_local.moto_launcher PORT
"""

from __future__ import annotations

import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple

_SERIALISED_TARGETS = ("DynamoDB", "AmazonSQS", "AWSEvents")


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
        if not self._needs_lock(environ):
            return self._app(environ, start_response)
        with self._lock:
            return list(self._app(environ, start_response))


def main() -> None:
    port = int(sys.argv[1])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", port, SerialisedControlPlane(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()

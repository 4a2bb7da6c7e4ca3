"""The local stack's clock: real time plus an offset that tests move forward, for behaviour that takes weeks.

The functions (each invocation runs with its clock moved), the local SageMaker, the scheduled rules and the
local S3's timestamps (``s3_clock``) all read it. Moving it forward applies the data bucket's lifecycle rules
day by day (``lifecycle``), as S3 would have over those days. SQS, DynamoDB and EventBridge keep real time.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime, timedelta

from pcam_local import lifecycle, s3_clock


class LocalClock:
    def __init__(self, endpoint: str):
        self._endpoint = endpoint
        self.offset = timedelta(0)
        self.lifecycle_actions: list[lifecycle.LifecycleAction] = []

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def offset_seconds(self) -> float:
        return self.offset.total_seconds()

    def _set_s3_time(self, when: datetime) -> None:
        offset = (when - datetime.now(UTC)).total_seconds()
        request = urllib.request.Request(
            self._endpoint + s3_clock.CLOCK_PATH, data=json.dumps({"offset_seconds": offset}).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - the local server's own URL
            answer.read()

    def advance(self, days: float, s3, buckets: list[str]) -> list[lifecycle.LifecycleAction]:
        """Move the clock ``days`` forward; the lifecycle actions the buckets' rules took meanwhile."""
        target = self.offset + timedelta(days=days)
        taken = []
        for bucket in buckets:
            taken += lifecycle.apply_until(s3, bucket, datetime.now(UTC) + target, self._set_s3_time)
        self.offset = target
        self._set_s3_time(self.now())
        self.lifecycle_actions += taken
        return taken

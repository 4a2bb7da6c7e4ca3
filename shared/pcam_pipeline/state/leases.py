"""Claims an attempt holds while it does what must happen once, such as publishing an event.

S3, SQS and EventBridge deliver at least once, so two copies of one message may be handled at the same moment
on two workers. A claim that any copy could take again would let both publish. So a claim lasts as long as
the invocation that took it can run: Lambda ends an invocation at its timeout. A copy handled meanwhile is
refused, and the holder finishes. The retry of an attempt that died comes after the queue's visibility
timeout, which is longer than the function's timeout, so it finds the claim lapsed. An attempt that fails
normally gives its claim back at once, so its retry need not wait.

The local runtime retries a failed message after a second: there, a worker that dies holding a claim leaves
its step until the claim lapses (the invocation's timeout).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pcam_pipeline.core.deadline import seconds_left
from pcam_pipeline.state.conditions import Before, Condition, Equals, Missing

# Outside an invocation (the CLI, tests) no deadline is known: Lambda's longest timeout.
LONGEST_INVOCATION_SECONDS = 900.0
# Lambda's deadline and the table's times come from different clocks.
CLOCK_MARGIN_SECONDS = 1.0


@dataclass(frozen=True)
class Lease:
    """One attempt's claim: its id, and the time by which the invocation holding it has surely ended."""

    attempt: str
    until: str

    @classmethod
    def for_this_invocation(cls) -> Lease:
        left = seconds_left()
        lasts = LONGEST_INVOCATION_SECONDS if left is None else left
        until = datetime.now(UTC) + timedelta(seconds=lasts + CLOCK_MARGIN_SECONDS)
        return cls(uuid.uuid4().hex, until.isoformat(timespec="milliseconds"))

    def fields(self, prefix: str) -> dict[str, str]:
        return {f"{prefix}_attempt": self.attempt, f"{prefix}_until": self.until}

    def held(self, prefix: str) -> Condition:
        """This lease is still the one recorded (nobody took over after it lapsed)."""
        return Equals(f"{prefix}_attempt", self.attempt)


def lapsed(prefix: str) -> Condition:
    """No claim is recorded, or the attempt that holds it has ended."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    return Missing(f"{prefix}_until") | Before(f"{prefix}_until", now)


def lease_fields(prefix: str) -> tuple[str, str]:
    """The attributes a lease is kept in, to remove when its work is done or given back."""
    return f"{prefix}_attempt", f"{prefix}_until"


@contextmanager
def given_back_on_failure(give_back: Callable[[], None]) -> Iterator[None]:
    """The claimed work; if it ends in any exception, the claim is given back before the exception goes on."""
    try:
        yield
    except BaseException:
        give_back()
        raise

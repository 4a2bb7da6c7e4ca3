"""How long the current invocation has left. Lambda ends an invocation at its timeout whatever it is doing, so
work with its own time limit (the OpenSlide child) takes the smaller of that limit and what is left; the handler
sets the deadline from the Lambda context, and outside an invocation (tests, the CLI) there is none."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("invocation_deadline", default=None)


@contextmanager
def invocation(remaining_seconds: float) -> Iterator[None]:
    """Inside, the invocation that runs now ends in ``remaining_seconds`` (Lambda's get_remaining_time_in_millis)."""
    token = _deadline.set(time.monotonic() + remaining_seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def seconds_left() -> float | None:
    """What the current invocation has left; None outside one."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()

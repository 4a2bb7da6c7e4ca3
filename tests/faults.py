"""Fault injection on the ports: every call a use case makes to the bucket, the state table, the queue, the bus,
SageMaker or the alert topic goes through one ``Faults`` plan, which counts the calls and makes the n-th fail
once with a retryable error (as AWS's throttling, a timeout or a 500 would), before it takes effect.

The harness (tests/unit/test_fault_injection.py) runs each path once per call it makes; a retry of the
same message must then end exactly as a run without the fault."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pcam_pipeline.core.errors import RetryableError


class InjectedFault(RetryableError):
    """What the plan raises: a retryable AWS error, as the adapters raise them."""


class Faults:
    def __init__(self, fail_at: int | None = None, only: Callable[[str], bool] = lambda call: True):
        self.fail_at = fail_at  # the number of the call to fail (1-based), or None to count only
        self.only = only  # which calls ("port.method") count
        self.calls: list[str] = []
        self.failed: str | None = None
        self.duplicated: str | None = None  # the message the harness delivered twice at once, and where
        self._armed = False

    @contextmanager
    def armed(self) -> Iterator[Faults]:
        """Count (and fail) the calls made inside; a test's own set-up and checks are not counted."""
        self._armed = True
        try:
            yield self
        finally:
            self._armed = False

    def before(self, call: str) -> None:
        if not (self._armed and self.only(call)):
            return
        self.calls.append(call)
        if self.failed is None and len(self.calls) == self.fail_at:
            self.failed = call
            raise InjectedFault(f"injected fault in call {self.fail_at} ({call}): ServiceUnavailable")

    def wrap(self, port: Any, name: str) -> Any:
        return FaultyPort(port, name, self)


class FaultyPort:
    """A port whose public methods ask the plan first; everything else is the port's own."""

    def __init__(self, port: Any, name: str, faults: Faults):
        object.__setattr__(self, "_port", port)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_faults", faults)

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._port, attribute)
        if attribute.startswith("_") or not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self._faults.before(f"{self._name}.{attribute}")
            return value(*args, **kwargs)

        return call

    def __setattr__(self, attribute: str, value: Any) -> None:
        setattr(self._port, attribute, value)

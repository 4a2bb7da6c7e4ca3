"""The account's Lambda concurrency, locally: past it an invocation is throttled and, as Lambda does for an SQS
event source, the batch is retried until a slot frees or the queue's visibility timeout lapses (Lambda Developer
Guide, "Creating and configuring an Amazon SQS event source mapping")."""

from __future__ import annotations

import threading
from collections.abc import Callable


class AccountConcurrency:
    def __init__(self, limit: int | None):
        self.limit = limit  # None: unlimited
        self._slots = threading.BoundedSemaphore(limit or 1)
        self._lock = threading.Lock()
        self._running = 0
        self.throttled = 0  # invocations that had to wait for a slot
        self.peak = 0

    def take(self, visibility_timeout: Callable[[], float]) -> bool:
        """A slot for one invocation; False when none freed within the queue's visibility timeout."""
        if self.limit is None:
            return True
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self.throttled += 1
            if not self._slots.acquire(timeout=visibility_timeout()):
                return False
        with self._lock:
            self._running += 1
            self.peak = max(self.peak, self._running)
        return True

    def release(self) -> None:
        if self.limit is not None:
            with self._lock:
                self._running -= 1
            self._slots.release()

"""Domain exceptions, named for what the caller should do. AWS errors are wrapped where they are caught.

- ``InvalidInput``: a dropped file cannot be used → quarantine it with the explanation; never retry.
- ``RetryableError``: AWS refused or failed for now (throttling, a permission, a network fault) →
  let the queue deliver the message again; after the last attempt it goes to the dead-letter queue.
- ``CapacityRefused``: SageMaker has no room for the job now (a quota, throttling) → a retryable error;
  slide scoring catches it and keeps the slide queued until a job ends or the next scheduled tick.
  ``QuotaIsZero``: the quota is 0, so no wait ends it → a training fails with how to raise it.
- ``JobFailed``: a SageMaker job, or what it left behind, is unusable → record it, alert operators,
  and do not retry (the same job would fail the same way).
- ``InvalidJobRequest``: a request SageMaker would refuse, from a deployment setting → record the job
  as failed with the reason; operators must change the setting.
- ``SettingsError``: a function's environment is wrong → the function cannot start.
- ``IncompleteRecord``: the state table lacks what a record's status promises (a bug or a hand edit) →
  the message is retried, then dead-lettered, with the missing field named.
"""

# Each part of a refusal's reason (problem, expected, found) is cut to this many characters: a reason is stored
# in the state table and published in events, whose items and entries have size limits (400 KB, 256 KB).
MAX_REASON_PART = 2_000


def bounded(text: str, limit: int = MAX_REASON_PART) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters not shown)"


class PipelineError(Exception):
    """Base class of every error the pipeline raises on purpose."""


class InvalidInput(PipelineError):
    """A dropped file cannot be used. It is quarantined with this explanation; never retried."""

    def __init__(self, problem: str, expected: str = "", found: str = ""):
        self.problem, self.expected, self.found = bounded(problem), bounded(expected), bounded(found)
        super().__init__(self.describe())

    def describe(self) -> str:
        parts = [self.problem]
        if self.expected:
            parts.append(f"expected {self.expected}")
        if self.found:
            parts.append(f"found {self.found}")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, str]:
        return {"problem": self.problem, "expected": self.expected, "found": self.found}


class RetryableError(PipelineError):
    """An AWS call failed or was refused for now; the queue retries the message."""


class CapacityRefused(RetryableError):
    """SageMaker refused to start a job for capacity (ResourceLimitExceeded, throttling): try again later."""


class QuotaIsZero(CapacityRefused):
    """SageMaker refused a job because the account's quota for its instance type is 0: no wait ends that, an
    operator must raise the quota (new accounts often have 0 for GPU training instances)."""

    def __init__(self, quota: str, message: str):
        self.quota = quota
        super().__init__(message)

    def how_to_raise(self) -> str:
        return (
            f"this account's SageMaker quota '{self.quota}' is 0; ask for more in the Service Quotas console "
            f"(Amazon SageMaker, '{self.quota}'), or choose an instance type this account has a quota for"
        )


class JobFailed(PipelineError):
    """A SageMaker job's outcome cannot be used; it is recorded and alerted, not retried."""


class InvalidJobRequest(PipelineError):
    """A request SageMaker's API model rejects (what boto3 would refuse to send)."""


class MisroutedEvent(PipelineError):
    """An event this deployment should never have received (another bucket): it fails to the
    dead-letter queue, where operators see the wiring mistake."""


class SettingsError(PipelineError):
    """A function's environment is missing or has an invalid setting."""


class IncompleteRecord(PipelineError):
    """The state table lacks a value that the record's status promises."""

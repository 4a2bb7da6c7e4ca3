"""Domain exceptions. AWS errors are wrapped where they are caught (``raise X(...) from exc``)."""


class PipelineError(Exception):
    """Base class of every error the pipeline raises on purpose."""


class InvalidInput(PipelineError):
    """A dropped file cannot be used. It is quarantined with this explanation; never retried."""

    def __init__(self, problem: str, expected: str = "", found: str = ""):
        self.problem = problem
        self.expected = expected
        self.found = found
        super().__init__(self.describe())

    def describe(self) -> str:
        parts = [self.problem]
        if self.expected:
            parts.append(f"expected {self.expected}")
        if self.found:
            parts.append(f"found {self.found}")
        return "; ".join(parts)

    def as_dict(self) -> dict:
        return {"problem": self.problem, "expected": self.expected, "found": self.found}


class StorageError(PipelineError):
    """Reading or writing the data bucket failed (retried by the queue)."""


class SettingsError(PipelineError):
    """A function's environment is missing or has an invalid setting."""

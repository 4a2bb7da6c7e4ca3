"""The fault-injection harness: a path (ingestion, conversion, the SageMaker flow, scoring) is run once without
faults, then once per port call it made, with that call failing once (tests/faults.py); every message whose
handling fails is delivered again, as SQS does, up to the queue's maxReceiveCount. Each run must end as the run
without faults did:

- the same events, each once (a repeat is allowed only of an event whose "published" mark was the call that
  failed: the first table write after the publish; the bus has no transactions, so the retry publishes it
  again, identical);
- the same final state of the table and the bucket (times and the version ids of the pipeline's own writes
  aside);
- no job record left "Starting" for a job SageMaker never started and nothing waits to start;
- no message left for the dead-letter queue: the retries finish what the failed attempt started;
- every quarantined or failed file with a reason.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pcam_pipeline.aws.s3_notifications import dropped_files_in
from pcam_pipeline.core.statuses import FileStatus, JobStatus
from tests.faults import Faults

MAX_RECEIVE_COUNT = 5  # the template's default maxReceiveCount
# Values that differ between two runs without faults (times, attempt notes), and the leases (state/leases.py):
# one whose release failed lapses, which delays nothing that is not finished; and who claimed an announcement
# or a job's failure (a copy may come first).
VOLATILE = re.compile(
    r"(_at|_since|^updated|^created|^open_attempts$|until$|_attempt$|^holder$|announced_by$|claimer$)"
)
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[.\d]*\+00:00")


class LeftForTheDeadLetterQueue(AssertionError):
    """A message failed on every delivery: operators would find it in the dead-letter queue."""


@dataclass
class Run:
    """One run of a path: the world it ran in and what it left."""

    world: Any
    faults: Faults
    deliveries: list[str] = field(default_factory=list)
    # Just before this port call (numbered as in the run without it), the message being handled is delivered
    # again, whole: a second copy on another worker (S3, SQS and EventBridge all deliver at least once).
    duplicate_before: int | None = None
    copying: bool = False  # the copy is being handled (an event published again has another id)
    _handling: list[tuple[str, Callable[[int], Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.duplicate_before is not None:
            count = self.faults.before

            def before(call: str) -> None:
                count(call)
                if (
                    self.faults.duplicated is None
                    and self._handling
                    and len(self.faults.calls) == self.duplicate_before
                ):
                    what, handle = self._handling[-1]
                    self.faults.duplicated = f"{what} (a copy, before call {len(self.faults.calls)}: {call})"
                    self.faults._armed, self.copying = False, True  # the copy's calls are not numbered
                    try:
                        self.deliver(self.faults.duplicated, handle)
                    finally:
                        self.faults._armed, self.copying = True, False

            self.faults.before = before  # type: ignore[method-assign]

    def deliver(self, what: str, handle: Callable[[int], Any]) -> Any:
        """One message, delivered again after each failure, as SQS does; ``handle`` takes the receive count."""
        self._handling.append((what, handle))
        try:
            for attempt in range(1, MAX_RECEIVE_COUNT + 1):
                self.deliveries.append(what)
                try:
                    return handle(attempt)
                except Exception as failure:  # noqa: BLE001 (SQS retries whatever the handler raised)
                    last = failure
            raise LeftForTheDeadLetterQueue(f"{what}: failed {MAX_RECEIVE_COUNT} times; last: {last!r}")
        finally:
            self._handling.pop()


def s3_event(key: str, version_id: str | None, etag: str = "") -> dict[str, Any]:
    """S3's EventBridge "Object Created" event for an upload, as the ingest queue receives it."""
    obj = {"key": key, "version-id": version_id, "etag": etag, "size": 1}
    return {"detail-type": "Object Created", "source": "aws.s3", "detail": {"bucket": {"name": "data"}, "object": obj}}


def ingest_message(run: Run, lab: Any, body: dict[str, Any]) -> None:
    """What the ingest handler does with one queue message (its idempotency layer only skips a finished one)."""
    for dropped in dropped_files_in(body):
        run.deliver(
            f"ingest {dropped.key}",
            lambda attempt, d=dropped: lab.ingestor.ingest_attempt(d, attempt, lambda: lab.ingestor.ingest(d)),
        )


def convert_all(run: Run, lab: Any) -> None:
    """Every shard message, delivered until the queue is empty (a retried planning may send one again)."""
    from pcam_pipeline.ingestion.shard_planning import ShardTask

    while messages := lab.queue.take_all():
        for body in messages:
            task = ShardTask.from_message(body)
            run.deliver(f"shard {task.shard} of {task.owner}", lambda _, t=task: lab.converter.convert(t))


# ------------------------------------------------------------------ what a run leaves
def normalised(value: Any, internal_versions: int) -> Any:
    """``value`` without what differs between runs: times, and version ids the pipeline's own writes got
    (a retried write takes another): ids above ``internal_versions`` become ``v*``."""
    if isinstance(value, dict):
        return {k: normalised(v, internal_versions) for k, v in value.items() if not VOLATILE.search(str(k))}
    if isinstance(value, list | tuple | set):
        items = [normalised(v, internal_versions) for v in value]
        return sorted(items, key=json.dumps) if isinstance(value, set) else items
    if isinstance(value, str):
        text = TIMESTAMP.sub("<time>", value)
        return re.sub(r"\bv(\d+)\b", lambda m: m.group(0) if int(m.group(1)) <= internal_versions else "v*", text)
    return value


@dataclass(frozen=True)
class Outcome:
    events: Counter[str]
    state: list[str]
    keys: list[str]
    orphans: list[str]
    unexplained: list[str]


def outcome_of(table: Any, blobs: Any, published: list[tuple[str, dict]], started: set[str], drops: int) -> Outcome:
    items = table.scan()
    events = Counter(json.dumps([kind, normalised(detail, drops)], sort_keys=True) for kind, detail in published)
    state = sorted(json.dumps(normalised(item, drops), sort_keys=True, default=str) for item in items)
    waiting = {item["sk"] for item in items if item["pk"] == "capacity-waits"}
    orphans = [item["pk"] for item in items if item["pk"].startswith("job#") and item.get("status") ==
               JobStatus.STARTING and item["pk"][4:] not in started and item["pk"][4:] not in waiting]  # fmt: skip
    unexplained = [item["pk"] for item in items if item["pk"].startswith("file#") and item.get("status") in
                   (FileStatus.QUARANTINED, FileStatus.FAILED) and not item.get("reason")]  # fmt: skip
    return Outcome(events, state, blobs.stored_keys(), orphans, unexplained)


def check_like_the_run_without_faults(expected: Outcome, got: Outcome, faults: Faults, where: str = "") -> None:
    where = where or f"with call {faults.fail_at} ({faults.failed}) failing once"
    assert got.unexplained == [], f"{where}: refused without a reason: {got.unexplained}"
    assert got.orphans == [], f"{where}: job records left Starting: {got.orphans}"
    assert got.keys == expected.keys, f"{where}: the bucket differs: {set(got.keys) ^ set(expected.keys)}"
    missing, extra = expected.events - got.events, got.events - expected.events
    assert not missing, f"{where}: events never published: {list(missing)}"
    if extra:  # a repeat only when the failed call was the first table write after a publish, and identical
        assert _first_write_after_a_publish(faults) and set(extra) <= set(expected.events), (
            f"{where}: extra events: {list(extra)}"
        )
    assert got.state == expected.state, (
        f"{where}: the state differs: " + "; ".join(sorted(set(got.state) ^ set(expected.state)))[:3000]
    )


def _first_write_after_a_publish(faults: Faults) -> bool:
    """The failed call is the state write that would have recorded a publish (an alert may come between)."""
    position = (faults.fail_at or 0) - 1
    if position <= 0 or not faults.calls[position].startswith("table."):
        return False
    for call in reversed(faults.calls[:position]):
        if call == "bus.publish":
            return True
        if call.startswith("table."):
            return False
    return False

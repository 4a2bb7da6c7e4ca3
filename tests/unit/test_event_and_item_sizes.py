"""No event detail can exceed EventBridge's 256 KB, and no state item DynamoDB's 400 KB: each event's worst case
(every field of its schema at its longest, in characters that take the most bytes) is built and checked, and so
is the largest record a refusal writes (shared/repros: big_event)."""

import json
from pathlib import Path

import pytest

from pcam_pipeline.aws import events, request_rules
from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.statuses import FileStatus
from pcam_pipeline.ingestion.quarantine import quarantine
from pcam_pipeline.state.access import file_pk
from tests.lab import make_lab

SCHEMAS = sorted((Path(__file__).parents[2] / "schemas" / "events").glob("*.json"))
# A megabyte of text in characters that cost the most: 4-byte UTF-8, and control characters that JSON escapes.
HUGE = ("\U0001f52c\u0000" * 300_000)[:600_000]


def worst_value(schema: dict):
    kinds = schema.get("type", "string")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "object" in kinds:
        properties = schema.get("properties") or {f"field{n}": {"type": "string"} for n in range(20)}
        return {name: worst_value(inner) for name, inner in properties.items()}
    if "string" in kinds:
        return HUGE
    if "integer" in kinds:
        return 2**63 - 1
    if "number" in kinds:
        return -1.7976931348623157e308
    return None


@pytest.mark.parametrize("schema_path", SCHEMAS, ids=lambda path: path.stem)
def test_the_largest_detail_of_each_event_fits_eventbridges_limit(schema_path):
    schema = json.loads(schema_path.read_text())
    detail = events.fitted_detail(worst_value(schema))
    entry = {"Source": events.SOURCE, "DetailType": schema["title"], "Detail": json.dumps(detail), "EventBusName": "b"}
    assert request_rules.event_entry_size(entry) <= 256 * 1024
    assert request_rules.violations("events", "PutEvents", {"Entries": [entry]}) == []
    assert set(detail) >= set(schema.get("properties", {}))  # texts are cut, no field is dropped


def test_a_detail_that_fits_is_published_unchanged():
    detail = {"slide_id": "s1", "reason": "x" * 10_000, "lab": None}
    assert events.fitted_detail(detail) == detail


def test_the_largest_quarantine_fits_its_event_and_its_state_item():
    lab = make_lab()
    key = "incoming/slides/" + "é" * 500 + ".h5"  # an S3 key of 1,016 bytes
    dropped = lab.drop(key, b"anything")
    refusal = InvalidInput(HUGE, HUGE, ", ".join(f"{n:03d}" + "n" * 1200 for n in range(250)))
    quarantine(lab.blobs, lab.state, lab.publisher, dropped, refusal)

    (detail,) = lab.publisher.of_type("File Quarantined")
    entry = {"Source": events.SOURCE, "DetailType": "File Quarantined", "Detail": json.dumps(detail)}
    assert request_rules.event_entry_size(entry) <= 256 * 1024
    assert "more characters not shown" in detail["found"]  # the lab is told the reason was cut
    item = lab.state.get(file_pk(key), f"v#{dropped.version}")
    assert request_rules.item_size(item) <= 400 * 1024
    assert item["status"] == FileStatus.QUARANTINED


def test_the_largest_scoring_job_record_fits_dynamodbs_item_limit():
    from datetime import UTC, datetime

    from pcam_pipeline.core.model_records import JobRecord
    from pcam_pipeline.core.records import ScoringQueueEntry
    from pcam_pipeline.scoring.batches import MAX_SLIDES_PER_JOB, BatchPolicy, next_batch
    from pcam_pipeline.scoring.queue import scoring_job
    from tests.fake_bucket import InMemoryBlobStore

    # A thousand one-patch slides, each with the longest id a lab's slide can have: the batch stops at the cap.
    longest = "labs/" + "l" * 32 + "/" + "\U0001f52c" * 63  # lab prefix + a 252-byte name
    queued = [ScoringQueueEntry(f"{longest}{n:03d}", f"{n:012d}", 1, "2026-01-01T00:00:00+00:00",
                                request="promotion 2026-12-07T00:00:00.000000+00:00", model="m" * 63)
              for n in range(1000)]  # fmt: skip
    batch = next_batch(queued, BatchPolicy(60, 100_000), datetime.now(UTC))
    assert len(batch) == MAX_SLIDES_PER_JOB
    job = scoring_job(InMemoryBlobStore(), batch, "m" * 63)
    assert isinstance(job, JobRecord)
    item = {**job.to_item(), "pk": f"job#{job.name}", "sk": "current", "status": "InProgress", "reason": "r" * 1024}
    assert request_rules.item_size(item) <= 400 * 1024

"""A quarantine that fails part-way (the move, the state write, the bus) is finished by the retry: the file ends in
quarantine/ with its reason, and "File Quarantined" is published once (shared/repros: lost_quarantine_event,
quarantine_retry2)."""

import pytest

from pcam_pipeline.core.statuses import FileStatus
from pcam_pipeline.ingestion.shard_planning import ShardTask
from tests.faults import Faults, InjectedFault
from tests.lab import make_lab
from tests.unit.test_damaged_files import damaged_chunk

NOT_HDF5 = b"not an hdf5 file at all"


def lab_failing_once(call: str, nth: int = 1):
    """A lab whose ``nth`` call of ``call`` (``port.method``) fails once."""
    faults = Faults(fail_at=nth, only=lambda made: made == call)
    return make_lab(faults=faults), faults


# The file's first sight is the first table write; the quarantine's decision the second.
@pytest.mark.parametrize(("call", "nth"), [("table.update", 2), ("bucket.move", 1), ("bus.publish", 1)])
def test_a_quarantine_that_fails_part_way_is_finished_by_the_retry_and_announced_once(call, nth):
    lab, faults = lab_failing_once(call, nth)
    dropped = lab.drop("incoming/slides/bad.h5", NOT_HDF5)
    with faults.armed():
        with pytest.raises(InjectedFault):
            lab.ingestor.ingest(dropped)
        outcome = lab.ingestor.ingest(dropped)  # SQS delivers the message again

    assert outcome["status"] == "quarantined" and "not an HDF5 file" in outcome["reason"]
    record = lab.state.file_version(dropped.key, dropped.version)
    assert record.status is FileStatus.QUARANTINED and record.unannounced_quarantine is None
    assert [event["key"] for event in lab.publisher.of_type("File Quarantined")] == [dropped.key]
    assert "quarantine/incoming/slides/bad.h5" in lab.blobs.stored_keys()
    assert lab.blobs.latest_version(dropped.key) is None  # moved out of incoming/


def test_a_delivery_after_a_finished_quarantine_publishes_nothing_more():
    lab, _ = lab_failing_once("nothing")
    dropped = lab.drop("incoming/slides/bad.h5", NOT_HDF5)
    lab.ingestor.ingest(dropped)
    assert lab.ingestor.ingest(dropped)["status"] == "already handled"
    assert len(lab.publisher.of_type("File Quarantined")) == 1


def test_a_damaged_shard_whose_announcement_failed_finishes_the_quarantine_on_its_retry():
    lab, faults = lab_failing_once("bus.publish")
    dropped = lab.drop("incoming/slides/s9.h5", damaged_chunk(1, count=3))
    lab.ingestor.ingest(dropped)
    task = ShardTask.from_message(lab.shard_messages()[0])
    with faults.armed():
        with pytest.raises(InjectedFault):
            lab.converter.convert(task)
        assert lab.converter.convert(task)["status"] == "damaged"  # the same message, delivered again

    assert [event["key"] for event in lab.publisher.of_type("File Quarantined")] == [dropped.key]
    assert lab.state.file_version(dropped.key, dropped.version).status is FileStatus.QUARANTINED

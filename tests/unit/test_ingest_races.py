"""Ingestion when deliveries overlap or arrive out of order (S3 events are at-least-once, workers concurrent).

Each race is made deterministic: a delivery reads the split's record, then another delivery runs to its end,
then the first one goes on to write. The lab runs on the fakes (tests/lab.py): the versioned bucket and the
state table held to S3 and DynamoDB by their contract tests."""

import numpy as np

from pcam_pipeline.core.statuses import FileStatus, OwnerStatus
from tests.lab import BUCKET  # and the lab fixture (tests/conftest.py)


def patches(count: int) -> np.ndarray:
    return np.zeros((count, 96, 96, 3), dtype=np.uint8)


def labels(count: int) -> np.ndarray:
    return np.zeros((count, 1, 1, 1), dtype=np.uint8)


def test_images_and_labels_of_different_counts_ingested_at_once_quarantine_the_second(lab):
    """Both deliveries read the split before either wrote: each saw no partner to compare with."""
    images = lab.drop("incoming/datasets/d/d_test_x.h5", x=patches(5))
    labelled = lab.drop("incoming/datasets/d/d_test_y.h5", y=labels(4))
    lab.between_read_and_write("split", lambda: lab.ingestor.ingest(labelled))
    outcome = lab.ingestor.ingest(images)
    assert outcome["status"] == "quarantined"
    record = lab.state.file_version(images.key, images.version)
    assert record.status is FileStatus.QUARANTINED and "disagree in number" in record.reason
    split = lab.state.split("d", "test")
    assert split.status is not OwnerStatus.FAILED and split.y_count == 4 and split.x_count is None
    assert lab.shard_messages() == []


def test_labels_ingested_while_their_images_are_planned_check_the_counts(lab):
    images = lab.drop("incoming/datasets/d/d_test_x.h5", x=patches(5))
    labelled = lab.drop("incoming/datasets/d/d_test_y.h5", y=labels(4))
    lab.between_read_and_write("split", lambda: lab.ingestor.ingest(images))
    assert lab.ingestor.ingest(labelled)["status"] == "quarantined"
    assert lab.state.file_version(labelled.key, labelled.version).status is FileStatus.QUARANTINED
    split = lab.state.split("d", "test")
    assert split.status is OwnerStatus.CONVERTING and split.x_count == 5 and split.y_count is None


def test_two_deliveries_of_one_upload_at_once_plan_its_shards_once(lab):
    images = lab.drop("incoming/slides/s1.h5", x=patches(5))
    lab.between_read_and_write("slide", lambda: lab.ingestor.ingest(images))
    assert lab.ingestor.ingest(images)["status"] == "already planned"
    assert sorted(body["shard"] for body in lab.shard_messages()) == [0, 1, 2]


def test_a_late_event_for_an_older_upload_does_not_replace_the_newer_one(lab):
    older = lab.drop("incoming/slides/s1.h5", x=patches(3))
    newer = lab.drop("incoming/slides/s1.h5", x=patches(5))
    lab.ingestor.ingest(newer)
    assert lab.ingestor.ingest(older)["status"] == "superseded"
    assert lab.state.slide("s1").x_version == newer.version and lab.state.slide("s1").x_count == 5
    assert {body["run_id"] for body in lab.shard_messages()} == {newer.run_id}
    record = lab.state.file_version(older.key, older.version)
    assert record.status is FileStatus.SUPERSEDED and newer.version in record.reason


def test_a_repeated_event_for_a_quarantined_upload_keeps_its_record_and_spares_the_newer_upload(lab):
    """Handled again, the bad upload would be quarantined again: moving the key's newer, good upload away."""
    bad = lab.drop("incoming/slides/s2.h5", x=np.zeros((3, 64, 64, 3), dtype=np.uint8))
    assert lab.ingestor.ingest(bad)["status"] == "quarantined"
    fixed = lab.drop("incoming/slides/s2.h5", x=patches(3))
    lab.ingestor.ingest(fixed)
    assert lab.ingestor.ingest(bad)["status"] == "already handled"
    assert lab.state.file_version(bad.key, bad.version).status is FileStatus.QUARANTINED
    assert lab.blobs.latest_version(fixed.key) == fixed.version_id
    assert lab.state.slide("s2").x_version == fixed.version


def test_the_last_attempt_after_attempts_that_died_quarantines_the_file_without_reading_it(lab):
    """On AWS a crash in the HDF5 library kills the runtime: the handler cannot say why. The attempts it
    killed leave their entry open; the last one quarantines the file instead of dying the same way."""
    dropped = lab.drop("incoming/slides/killer.h5", x=patches(2))
    for died in (1, 2):
        lab.state.open_attempt(dropped.key, dropped.version, died)  # opened, never closed: the process died
    outcome = lab.ingestor.ingest_attempt(dropped, 3, lambda: lab.ingestor.ingest(dropped))
    assert outcome["status"] == "quarantined"
    record = lab.state.file_version(dropped.key, dropped.version)
    assert record.status is FileStatus.QUARANTINED
    assert record.reason.startswith("the file crashed the reader; expected a file the pipeline's HDF5 reader gets "
                                    "through; found 2 earlier attempt(s) ended without an answer")  # fmt: skip
    assert lab.shard_messages() == []


def test_an_attempt_after_one_that_failed_normally_reads_the_file_again(lab):
    dropped = lab.drop("incoming/slides/flaky.h5", x=patches(2))
    lab.state.record_file_received(dropped.key, dropped.version)
    lab.state.open_attempt(dropped.key, dropped.version, 1)
    lab.state.close_attempt(dropped.key, dropped.version, 1)  # it ended (with an error the queue retried)
    assert lab.ingestor.ingest_attempt(dropped, 3, lambda: lab.ingestor.ingest(dropped))["status"] == "converting"
    assert lab.state.get(f"file#{dropped.key}", f"v#{dropped.version}")["open_attempts"] == {}


def test_a_died_attempt_before_the_last_one_is_simply_tried_again(lab):
    dropped = lab.drop("incoming/slides/once.h5", x=patches(2))
    lab.state.record_file_received(dropped.key, dropped.version)
    lab.state.open_attempt(dropped.key, dropped.version, 1)
    assert lab.ingestor.ingest_attempt(dropped, 2, lambda: lab.ingestor.ingest(dropped))["status"] == "converting"


def test_an_attempt_for_an_upload_that_is_not_there_leaves_no_record(lab):
    from pcam_pipeline.core.dropped_files import DroppedFile

    ghost = DroppedFile(BUCKET, "incoming/slides/ghost.h5", "no-such-version", "etag")
    assert lab.ingestor.ingest_attempt(ghost, 1, lambda: lab.ingestor.ingest(ghost))["status"] == "gone"
    assert lab.state.get("file#incoming/slides/ghost.h5", "v#no-such-version") is None


def _whole_slide(tmp_path, **options) -> bytes:
    from pcam_synth.whole_slides import synth_wsi

    synth_wsi(tmp_path / "slide.tif", rows=6, cols=8, seed=2, **options)
    return (tmp_path / "slide.tif").read_bytes()


def test_a_sidecar_recorded_while_its_slide_is_read_still_sets_the_resolution(lab, tmp_path):
    """The slide's delivery read no sidecar; the sidecar's delivery found no cut slide to redo."""
    slide = lab.drop("incoming/slides/w.tif", _whole_slide(tmp_path))  # says 0.486 µm/px itself
    sidecar = lab.drop("incoming/slides/w.json", b'{"mpp": 0.243}')
    lab.between_read_and_write("slide_sidecar", lambda: lab.ingestor.ingest(sidecar))
    lab.ingestor.ingest(slide)
    record = lab.state.slide("w")
    assert record.sidecar_version == sidecar.version, "cut at the sidecar's resolution in the end"
    plans = {body["tile_plan_key"] for body in lab.shard_messages()}
    assert record.tile_plan_key in plans


def test_a_slide_without_resolution_is_not_quarantined_when_its_sidecar_lands_meanwhile(lab, tmp_path):
    slide = lab.drop("incoming/slides/n.tif", _whole_slide(tmp_path, says_mpp=False))
    sidecar = lab.drop("incoming/slides/n.json", b'{"mpp": 0.486}')
    lab.between_read_and_write("slide_sidecar", lambda: lab.ingestor.ingest(sidecar))
    assert lab.ingestor.ingest(slide)["status"] == "converting"
    assert lab.state.file_version(slide.key, slide.version).status is FileStatus.CONVERTING
    assert lab.state.slide("n").sidecar_version == sidecar.version
    assert lab.state.slide_awaiting_mpp("n") is None

"""Bad input is quarantined with a plain reason, nothing is lost, and the pipeline carries on."""

import gzip
import json

import numpy as np
import pytest

from tests.event_contracts import contract_violations
from tests.hostile_files import HOSTILE, hostile_file
from tests.integration.conftest import INTEGRATION
from tests.lab import h5_bytes

pytestmark = INTEGRATION

X = "camelyonpatch_level_2_split_train_x.h5"
Y = "camelyonpatch_level_2_split_train_y.h5"


def _assert_quarantined(pipeline, key: str, body: bytes, *reason_parts: str) -> dict:
    assert not pipeline.stack.list_keys(key), "the bad file no longer sits in incoming/"
    assert pipeline.stack.read(f"quarantine/{key}") == body, "the file is kept, byte for byte"
    error = pipeline.json(f"quarantine/{key}.error.json")
    for part in reason_parts:
        assert part in error["error"], error
    assert error["key"] == key and error["expected"]
    assert pipeline.file_record(key)["status"] == "quarantined"
    (announced,) = pipeline.events_for("File Quarantined", key=key)
    assert announced["detail"]["problem"] == error["problem"], "integrators hear the same reason"
    assert contract_violations("File Quarantined", announced["detail"]) == [], "as its schema file says"
    return error


def _patches(count: int) -> np.ndarray:
    return np.random.default_rng(count).integers(0, 255, (count, 96, 96, 3), dtype=np.uint8)


BAD_SLIDES = {
    "not-hdf5": (b"slide_id,patch\nA,1\n", ["not an HDF5 file"]),
    "empty": (b"", ["empty (0 bytes)"]),
    "no-x": (h5_bytes(images=_patches(3)), ["no 'x' dataset", "found images"]),
    "wrong-shape": (h5_bytes(x=np.zeros((3, 64, 64, 3), np.uint8)), ["wrong shape", "(3, 64, 64, 3)"]),
    "wrong-dtype": (h5_bytes(x=np.zeros((3, 96, 96, 3), np.float32)), ["wrong data type", "float32"]),
    "bad-coords": (h5_bytes(x=_patches(3), coords=np.zeros((2, 2), np.int64)), ["'coords' has the wrong shape"]),
    "far-coords": (  # its heatmap would have needed terabytes
        h5_bytes(x=_patches(2), coords=np.array([[0, 0], [1_152_000, 1_152_000]], np.int64)),
        ["'coords' has positions outside any slide", "positions from 0 to 1,152,000"],
    ),
    "negative-coords": (
        h5_bytes(x=_patches(2), coords=np.array([[0, -96], [96, 0]], np.int64)),
        ["'coords' has positions outside any slide"],
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_SLIDES))
def test_unusable_slides_are_quarantined_with_a_reason(pipeline, name):
    body, reason = BAD_SLIDES[name]
    key = f"incoming/slides/bad-{name}.h5"
    pipeline.drop(key, body)
    pipeline.settle()
    _assert_quarantined(pipeline, key, body, *reason)
    assert not pipeline.events_for("Slide Ready", slide_id=f"bad-{name}")


@pytest.mark.parametrize("case", sorted(case for case, (_, reader, *_) in HOSTILE.items() if reader == "x"))
def test_hostile_slides_are_quarantined_from_their_header_with_a_reason(pipeline, case):
    """Links, virtual and external data, 40 million declared patches in a small file, unwritten chunks,
    unknown filters, odd data types, absurd counts: each costs a quarantine record and nothing else."""
    build, _, problem, expected, found = HOSTILE[case]
    body, slide_id = hostile_file(build), "hostile-" + case.replace(" ", "-")
    key = f"incoming/slides/{slide_id}.h5"
    pipeline.drop(key, body)
    pipeline.settle()
    error = _assert_quarantined(pipeline, key, body, problem)
    assert (error["problem"], error["expected"], error["found"]) == (problem, expected, found)
    assert not pipeline.stack.list_keys(f"images/slides/{slide_id}/"), "not one patch was converted"
    assert not pipeline.stack.dead_letters()["IngestDeadLetterQueue"]


def test_a_file_found_damaged_during_conversion_is_quarantined_with_the_patches_it_spoils(pipeline):
    from tests.unit.test_damaged_files import damaged_chunk

    key, body = "incoming/slides/bad-damaged-chunk.h5", damaged_chunk(4, count=40)
    pipeline.drop(key, body)
    pipeline.settle()
    # Patch 4's chunk is damaged; conversion reads patches in blocks, and names the block it could not read.
    error = _assert_quarantined(pipeline, key, body, "patches 0 to 15 cannot be read (the file is damaged)")
    assert pipeline.owner_record("slide#bad-damaged-chunk")["status"] == "failed"
    assert not pipeline.events_for("Slide Ready", slide_id="bad-damaged-chunk")
    dead = pipeline.stack.dead_letters()["ConvertDeadLetterQueue"]
    assert not [m for m in dead if m.get("owner") == "slide#bad-damaged-chunk"], "never retried into a dead letter"
    assert error["found"], "HDF5's own words"


def test_a_gzip_bomb_is_refused_as_soon_as_it_inflates_past_the_cap(pipeline):
    from tests.unit.test_gzip_bombs import bomb

    key, body = "incoming/slides/bad-bomb.h5.gz", bomb(200 << 20)  # 200 MB of zeros; the stack's cap is 50 MB
    pipeline.drop(key, body)
    pipeline.settle()
    _assert_quarantined(pipeline, key, body, "inflates past the limit", "at most 0.05 GB uncompressed")
    assert not pipeline.stack.list_keys("staging/slides/bad-bomb")
    assert not pipeline.stack.s3.list_multipart_uploads(Bucket=pipeline.stack.bucket).get("Uploads")


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("incoming/slides/clinic A/slide-1.h5", "slides sit directly in incoming/slides/"),
        ("incoming/slides/..h5", "the slide id is a path step, not a name"),
        ("incoming/slides/" + "n" * 300 + ".h5", "the slide id is too long"),
        ("incoming/slides/slide-\u202egpj.h5", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("incoming/slides/slide\u200b-1.h5", "U+200B ZERO WIDTH SPACE"),
    ],
    ids=["nested-folder", "dot-dot", "300-characters", "right-to-left-override", "zero-width-space"],
)
def test_keys_that_cannot_name_a_slide_are_quarantined_with_a_reason(pipeline, key, problem):
    body = h5_bytes(x=_patches(2))
    pipeline.drop(key, body)
    pipeline.settle()
    _assert_quarantined(pipeline, key, body, problem)


@pytest.mark.parametrize(
    ("key", "body", "problem"),
    [
        ("incoming/slides/far-too-fine.json", b'{"mpp": 1' + b"0" * 400 + b"}", "a number the pipeline cannot use"),
        ("incoming/datasets/deep/training.json", b"[" * 3000, "nests objects or arrays too deeply"),
    ],
    ids=["400-digit-number", "3000-brackets"],
)
def test_json_a_lab_sends_that_would_break_the_parser_is_quarantined_with_a_reason(pipeline, key, body, problem):
    pipeline.drop(key, body)
    pipeline.settle()
    _assert_quarantined(pipeline, key, body, problem)
    assert not pipeline.stack.dead_letters()["IngestDeadLetterQueue"], "refused once, never retried"


def test_a_slide_named_in_decomposed_unicode_gets_the_composed_id(pipeline):
    """A Mac writes "café" as e + U+0301; the id, the results' keys and the events use the composed form."""
    pipeline.drop("incoming/slides/cafe\u0301.h5", h5_bytes(x=_patches(3)))
    pipeline.settle()
    assert pipeline.events_for("Slide Ready", slide_id="caf\u00e9")


def test_a_key_too_long_to_quarantine_under_its_own_name_is_quarantined_under_its_hash(pipeline):
    from pcam_pipeline.core.keys import quarantine_error_key, quarantine_key

    key = "incoming/slides/" + "l" * (1024 - len("incoming/slides/.h5")) + ".h5"  # S3's longest key
    pipeline.drop(key, b"junk")
    pipeline.settle()
    assert quarantine_key(key).startswith("quarantine/long-names/")
    assert pipeline.stack.read(quarantine_key(key)) == b"junk"
    error = pipeline.json(quarantine_error_key(key))
    assert error["key"] == key and "the slide id is too long" in error["error"]
    assert pipeline.file_record(key)["status"] == "quarantined"


def test_a_slide_id_of_200_characters_is_scored_like_any_other(pipeline):
    slide_id = "s" * 200
    pipeline.drop(f"incoming/slides/{slide_id}.h5", h5_bytes(x=_patches(3)))
    pipeline.settle()
    assert pipeline.events_for("Slide Ready", slide_id=slide_id)


def test_a_truncated_upload_is_quarantined(pipeline):
    whole = h5_bytes(x=_patches(20))
    body = whole[: len(whole) // 2]
    key = "incoming/slides/bad-truncated.h5"
    pipeline.drop(key, body)
    pipeline.settle()
    _assert_quarantined(pipeline, key, body, "truncated")


def test_a_truncated_gzip_download_is_quarantined(pipeline):
    body = gzip.compress(h5_bytes(x=_patches(5)))[:-40]
    key = "incoming/slides/bad-gz.h5.gz"
    pipeline.drop(key, body)
    pipeline.settle()
    _assert_quarantined(pipeline, key, body, ".gz file is truncated")


def test_labels_outside_0_and_1_are_quarantined(pipeline):
    key = f"incoming/datasets/badlabels/{Y}"
    body = h5_bytes(y=np.array([0, 1, 3, 1], np.int64))
    pipeline.drop(key, body)
    pipeline.settle()
    _assert_quarantined(pipeline, key, body, "labels other than 0 and 1", "the values 3")


def test_labels_that_disagree_with_the_images_in_number_are_quarantined_and_the_split_waits(pipeline, patches):
    x, y = patches
    pipeline.drop(f"incoming/datasets/mismatch/{X}", h5_bytes(x=x[:12]))
    pipeline.settle()
    key = f"incoming/datasets/mismatch/{Y}"
    body = h5_bytes(y=y[:11])
    pipeline.drop(key, body)
    pipeline.settle()
    _assert_quarantined(pipeline, key, body, "disagree in number", "(12)", "found 11")
    assert not pipeline.events_for("Split Ready", dataset="mismatch")
    good = y[:12].reshape(-1, 1, 1, 1)
    pipeline.drop(key, h5_bytes(y=good))
    pipeline.settle()
    assert len(pipeline.events_for("Split Ready", dataset="mismatch")) == 1, "a corrected file completes the split"


def test_images_that_arrive_second_with_another_count_are_quarantined_and_the_split_waits(pipeline, patches):
    x, y = patches
    pipeline.drop(f"incoming/datasets/mismatch-x/{Y}", h5_bytes(y=y[:12].reshape(-1, 1, 1, 1)))
    pipeline.settle()
    key = f"incoming/datasets/mismatch-x/{X}"
    body = h5_bytes(x=x[:13])
    pipeline.drop(key, body)
    pipeline.settle()
    _assert_quarantined(pipeline, key, body, "disagree in number", "found 13")
    assert not pipeline.events_for("Split Ready", dataset="mismatch-x")
    assert not pipeline.stack.list_keys("images/datasets/mismatch-x/"), "no work is started for them"
    pipeline.drop(key, h5_bytes(x=x[:12]))
    pipeline.settle()
    assert len(pipeline.events_for("Split Ready", dataset="mismatch-x")) == 1, "matching images complete the split"


def test_files_in_unknown_places_are_quarantined(pipeline):
    key = "incoming/datasets/somelab/notes about the run.txt"
    pipeline.drop(key, b"notes")
    pipeline.settle()
    _assert_quarantined(pipeline, key, b"notes", "must be an HDF5 file")


def test_a_shard_that_keeps_failing_ends_in_the_dead_letter_queue_and_the_state_says_so(pipeline, patches):
    x, _ = patches
    key = "incoming/slides/shard-fails.h5"
    pipeline.drop(key, h5_bytes(x=x[:20]))
    pipeline.settle()
    record = pipeline.owner_record("slide#shard-fails")
    poisoned = {
        "owner": "slide#shard-fails",
        "run_id": record["x_run"],
        "shard": 7,
        "start": 0,
        "stop": 5,
        "source_key": "incoming/slides/vanished.h5",
        "source_version": None,
        "image_prefix": record["image_prefix"],
        "file_key": key,
        "file_version": record["x_version"],
    }
    queue = next(
        m.queue_url for m in pipeline.stack.deployed.mappings if m.function.logical_id == "ConvertShardFunction"
    )
    pipeline.stack.sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(poisoned))
    pipeline.settle()
    dead = pipeline.stack.dead_letters()["ConvertDeadLetterQueue"]
    assert any(m.get("owner") == "slide#shard-fails" for m in dead)
    record = pipeline.owner_record("slide#shard-fails")
    assert record["status"] == "failed" and "shard 7 failed" in record["failure"]
    assert "dead-letter" in pipeline.file_record(key)["reason"]
    attempts = [
        i for i in pipeline.stack.runtime.invocations if i.function == "ConvertShardFunction" and i.failed_records
    ]
    assert len(attempts) >= 3, "the shard was retried before it was dead-lettered"


def test_a_late_duplicate_event_for_a_quarantined_file_changes_nothing(pipeline):
    key = "incoming/slides/bad-late-duplicate.h5"
    pipeline.drop(key, b"junk")
    pipeline.settle()
    versions = pipeline.stack.s3.list_object_versions(Bucket=pipeline.stack.bucket, Prefix=key)["Versions"]
    pipeline.deliver_object_created(key, "a-version-gone")
    pipeline.settle()
    assert pipeline.file_record(key)["status"] == "quarantined"
    assert not pipeline.stack.dead_letters()["IngestDeadLetterQueue"]
    assert versions, "the original upload is still in the bucket's version history"

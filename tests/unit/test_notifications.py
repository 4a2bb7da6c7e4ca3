import json
from pathlib import Path

from pcam_pipeline.aws.observability import is_last_attempt
from pcam_pipeline.aws.s3_notifications import dropped_files_in

EVENTS = Path(__file__).parents[2] / "events"


def test_eventbridge_object_created_event_names_the_upload():
    body = json.loads((EVENTS / "s3-object-created-eventbridge.json").read_text())
    (dropped,) = dropped_files_in(body)
    assert dropped.key == "incoming/datasets/pcam/camelyonpatch_level_2_split_train_x.h5"
    assert dropped.version_id == "Rb_l2T8UHDkFEwCgJjhlgPOZC0qJ.vpD"


def test_s3_notification_keys_are_url_decoded():
    body = json.loads((EVENTS / "s3-notification-spaces.json").read_text())
    (dropped,) = dropped_files_in(body)
    assert dropped.key == "incoming/slides/patient 7 ü.h5"
    assert dropped.version_id is None and dropped.version == "0123456789abcdef0123456789abcdef"


def test_s3_test_event_announces_nothing():
    assert dropped_files_in({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}) == []


def test_null_version_means_unversioned():
    body = json.loads((EVENTS / "s3-object-created-eventbridge.json").read_text())
    body["detail"]["object"]["version-id"] = "null"
    assert dropped_files_in(body)[0].version_id is None


def test_last_attempt_is_the_one_that_reaches_max_receive_count():
    assert not is_last_attempt("2", 3)
    assert is_last_attempt("3", 3)


def test_the_key_as_spelled_in_the_event_is_kept_for_keys_that_exist_only_so():
    body = json.loads((EVENTS / "s3-object-created-eventbridge.json").read_text())
    body["detail"]["object"]["key"] = "incoming/slides/c++ 50%.h5"
    (dropped,) = dropped_files_in(body)
    assert dropped.key == "incoming/slides/c   50%.h5"
    assert dropped.as_spelled_in_event().key == "incoming/slides/c++ 50%.h5"


def test_folder_markers_and_hidden_or_file_manager_files_are_ignored_without_a_quarantine():
    body = json.loads((EVENTS / "s3-object-created-eventbridge.json").read_text())
    ignored = ["incoming/slides/", "incoming/labs/north/", "incoming/slides/.DS_Store", "incoming/slides/._s1.svs",
               "incoming/datasets/pcam/Thumbs.db", "incoming/slides/desktop.ini"]  # fmt: skip
    for key in ignored:
        body["detail"]["object"]["key"] = key
        assert dropped_files_in(body) == [], key
    for key in ("incoming/slides/s1.svs", "incoming/slides/..h5", "incoming/slides/.h5"):  # refused with a reason
        body["detail"]["object"]["key"] = key
        assert [dropped.key for dropped in dropped_files_in(body)] == [key]

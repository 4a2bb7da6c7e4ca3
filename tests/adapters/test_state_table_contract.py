"""The in-memory state table used by fast unit tests behaves like DynamoDB (moto) for every operation
the state package uses: the same cases run on both."""

import time

import boto3
import pytest
from moto import mock_aws

from pcam_pipeline.aws import request_rules
from pcam_pipeline.core.deadline import invocation
from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.core.model_records import JobRecord
from pcam_pipeline.core.records import SplitRecord
from pcam_pipeline.core.statuses import FileStatus, JobStatus
from pcam_pipeline.state import StateStore, split_pk
from tests.fakes import InMemoryTable


@pytest.fixture(params=["dynamodb", "memory"])
def state(request, monkeypatch):
    if request.param == "memory":
        yield StateStore(table=InMemoryTable())
        return
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        request_rules.install(session)  # the state package's requests are ones DynamoDB accepts
        dynamodb = session.resource("dynamodb")
        dynamodb.create_table(
            TableName="state",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield StateStore("state", dynamodb)


OWNER = split_pk("ds", "train")


def test_a_record_is_created_once(state):
    job = JobRecord("pcam-j", JobKind.TRAINING, dataset="ds", train_count=3)
    assert state.create_job(job)
    assert not state.create_job(JobRecord("pcam-j", JobKind.TUNING))
    assert state.job("pcam-j") == job


def test_a_transition_is_written_only_from_the_state_it_leaves(state):
    state.create_job(JobRecord("pcam-j", JobKind.TRAINING))
    assert state.mark_job_started("pcam-j", hyperparameters={"epochs": "2"})
    assert not state.mark_job_started("pcam-j")
    assert state.record_job_status("pcam-j", JobStatus.COMPLETED)
    assert not state.record_job_status("pcam-j", JobStatus.IN_PROGRESS)
    job = state.job("pcam-j")
    assert (job.status, job.hyperparameters) == (JobStatus.COMPLETED, {"epochs": "2"})
    assert job.ended_at is not None


def test_shards_count_once_and_only_for_the_current_upload(state):
    state.start_patch_conversion(OWNER, {"kind": "split", "x_run": "r1", "shards_total": 2}, SplitRecord())
    state.record_shard_done(OWNER, "r1", 0)
    state.record_shard_done(OWNER, "r1", 0)
    assert state.record_shard_done(OWNER, "old-run", 1) is None
    assert state.record_shard_done(OWNER, "r1", 1)["shards_done"] == [0, 1]
    assert state.owner(OWNER).shards_complete


def test_one_attempt_at_a_time_announces_and_a_retry_finishes_what_a_failed_one_left(state):
    state.start_patch_conversion(OWNER, {"kind": "split", "x_run": "r1"}, SplitRecord())
    first = state.claim_ready(OWNER, "token", "shard 1")
    assert first is not None
    assert state.claim_ready(OWNER, "token", "shard 2") is None
    assert state.claim_ready(OWNER, "token", "shard 1") is None, "a copy of the same message, handled meanwhile"
    state.release_ready(OWNER, first)  # the first attempt failed
    retry = state.claim_ready(OWNER, "token", "shard 1")
    assert retry is not None
    assert not state.mark_ready(OWNER, "manifests/m", first), "only the claim's holder marks it ready"
    assert state.mark_ready(OWNER, "manifests/m", retry)  # ready before the event: its consumers find it so
    state.release_ready(OWNER, first)  # a late release of an older attempt takes nothing from this one
    assert state.claim_ready(OWNER, "token", "shard 2") is None
    state.mark_announced(OWNER, "token")
    state.release_ready(OWNER, retry)
    assert state.claim_ready(OWNER, "token", "shard 1") is None  # announced: a duplicate delivery claims nothing
    newer = state.claim_ready(OWNER, "new token", "shard 2")
    assert newer is not None
    state.mark_announced(OWNER, "token")  # the older inputs' announcement ends late: the newer claim stays
    assert state.claim_ready(OWNER, "new token", "shard 2") is None


def test_a_job_failure_is_handled_by_one_attempt_at_a_time_until_it_is_finished(state):
    state.create_job(JobRecord(name="j", kind=JobKind.TRAINING, dataset="ds"))
    finished = ("alerted", "retried quietly")
    first = state.claim_failure_handling("j", "event 1", finished)
    assert first is not None and state.claim_failure_handling("j", "event 2", finished) is None
    assert state.claim_failure_handling("j", "event 1", finished) is None, "a copy of the same event"
    state.mark_failure_handled("j", "to alert")
    state.release_failure_handling("j", first)  # the alert failed: the next delivery sends it
    second = state.claim_failure_handling("j", "event 2", finished)
    assert second is not None
    state.mark_failure_handled("j", "alerted")
    state.release_failure_handling("j", second)
    assert state.claim_failure_handling("j", "event 3", finished) is None, "handled"


def test_a_claim_whose_invocation_has_ended_lapses(state):
    """An attempt that died (Lambda ended it at its timeout) gave nothing back: its claim lapses."""
    state.start_patch_conversion(OWNER, {"kind": "split", "x_run": "r1"}, SplitRecord())
    with invocation(-5):  # its deadline passed
        assert state.claim_ready(OWNER, "token", "shard 1") is not None
    with invocation(60):
        assert state.claim_ready(OWNER, "token", "shard 1") is not None
        assert state.claim_ready(OWNER, "token", "shard 2") is None


def test_a_failed_shard_is_kept_in_a_map_and_fails_its_owner(state):
    state.start_patch_conversion(OWNER, {"kind": "split", "x_run": "r1"}, SplitRecord())
    state.record_shard_failed(OWNER, "r1", 3, "broken")
    assert state.get(OWNER)["failed_shards"] == {"3": "broken"}
    assert state.owner(OWNER).failure == "shard 3 failed: broken"
    state.record_shard_done(OWNER, "r1", 3)  # redriven and converted after all
    assert state.owner(OWNER).failed_shards == {}


def test_a_write_decided_on_an_outdated_read_of_the_inputs_is_refused(state):
    """Two deliveries read the split before either wrote: the second write must not pass unchecked."""
    before = SplitRecord()
    labels = {"kind": "split", "y_version": "v1", "y_count": 3}
    assert state.record_labels(OWNER, labels, as_read=before)
    assert not state.start_patch_conversion(OWNER, {"kind": "split", "x_run": "r1"}, as_read=before)
    assert state.owner(OWNER).x_run is None
    assert state.start_patch_conversion(OWNER, {"kind": "split", "x_run": "r1"}, as_read=state.owner(OWNER))
    assert not state.record_labels(OWNER, {**labels, "y_version": "v2"}, as_read=before)
    assert not state.start_patch_conversion(OWNER, {"kind": "split", "x_run": "r1"}, as_read=before)
    assert (state.owner(OWNER).x_run, state.owner(OWNER).y_version) == ("r1", "v1")


def test_floats_survive_and_lists_keep_their_order(state):
    from pcam_pipeline.core.model_records import CurrentModel

    current = CurrentModel("m3", "t", "ops", "why", metrics={"auc": 0.9375}, replaced=["m2", "m1"])
    assert state.replace_current_model(current, expected=None)
    assert not state.replace_current_model(current, expected=None)
    stored = state.current_model()
    assert stored.metrics == {"auc": 0.9375} and stored.replaced == ["m2", "m1"]


def test_removed_attributes_are_gone(state):
    state.start_patch_conversion(OWNER, {"kind": "split", "x_run": "r1"}, SplitRecord())
    state.claim_ready(OWNER, "token", "first")
    state.start_patch_conversion(OWNER, {"kind": "split", "x_run": "r2"}, state.owner(OWNER))
    assert "ready_token" not in state.get(OWNER)


def test_only_the_change_announced_is_marked_announced(state):
    from pcam_pipeline.core.model_records import CurrentModel

    first = CurrentModel("m1", "2026-01-01T00:00:00.000001+00:00", "ops", "why", announced=False)
    assert state.replace_current_model(first, expected=None)
    later = CurrentModel("m1", "2026-01-02T00:00:00.000001+00:00", "ops", "again", announced=False)
    state.mark_current_model_announced(later)  # not the change that is current: nothing marked
    assert not state.current_model().announced
    state.mark_current_model_announced(first)
    assert state.current_model().announced
    state.record_promotion_history(first, action="promoted")
    state.record_promotion_history(first, action="promoted")  # a retry writes the same entry
    assert len(state.promotion_history()) == 1


def test_a_change_of_the_current_model_is_announced_by_one_attempt_at_a_time(state):
    from pcam_pipeline.core.model_records import CurrentModel

    first = CurrentModel("m1", "2026-01-01T00:00:00.000001+00:00", "ops", "why", announced=False)
    assert state.replace_current_model(first, expected=None)
    holder = state.claim_current_model_announcement(first)
    assert holder is not None and state.claim_current_model_announcement(first) is None
    later = CurrentModel("m2", "2026-01-02T00:00:00.000001+00:00", "ops", "again", announced=False)
    assert state.replace_current_model(later, expected="m1")  # replaced while m1's announcement runs
    assert state.claim_current_model_announcement(first) is None, "not the current change any more"
    newer = state.claim_current_model_announcement(later)
    assert newer is not None, "the claim on the change it replaced does not hold this one"
    state.release_current_model_announcement(holder)  # the older attempt's late release
    assert state.claim_current_model_announcement(later) is None
    state.mark_current_model_announced(later)
    state.release_current_model_announcement(newer)
    assert state.claim_current_model_announcement(later) is None, "announced"


def test_a_quarantine_is_decided_once_and_announced_by_one_attempt_at_a_time(state):
    assert state.record_quarantine("k", "v1", "not HDF5", "quarantine/k", {"key": "k"})
    assert not state.record_quarantine("k", "v1", "a copy's reason", "quarantine/k", {"key": "k", "copy": 1})
    assert state.file_version("k", "v1").reason == "not HDF5"
    holder = state.claim_quarantine_announcement("k", "v1")
    assert holder is not None and state.claim_quarantine_announcement("k", "v1") is None
    state.release_quarantine_announcement("k", "v1", holder)  # its move failed: the retry finishes
    retry = state.claim_quarantine_announcement("k", "v1")
    assert retry is not None
    state.mark_quarantine_announced("k", "v1")
    assert (
        state.claim_quarantine_announcement("k", "v1") is None
        and state.file_version("k", "v1").unannounced_quarantine is None
    )


def test_two_attempts_for_one_training_take_one_of_the_days_starts(state):
    assert state.claim_training_start("ds", "2026-12-07", "job-a", 2)
    assert state.claim_training_start("ds", "2026-12-07", "job-a", 2), "a copy or a retry: the same start"
    assert state.claim_training_start("ds", "2026-12-07", "job-b", 2)
    assert not state.claim_training_start("ds", "2026-12-07", "job-c", 2), "the day's starts are taken"
    assert state.claim_training_start("ds", "2026-12-08", "job-c", 2)


def test_each_ingestion_write_leaves_the_fields_its_readers_use(state):
    """What pcam status, the completer and the conversion read back after each named write."""
    state.record_file_received("incoming/a.h5", "v1")
    received = state.get("file#incoming/a.h5", "v#v1")
    assert (received["key"], received["version"], received["status"]) == ("incoming/a.h5", "v1", "received")
    assert received["received_at"]
    state.record_file("incoming/a.h5", "v1", FileStatus.CONVERTED)
    state.record_file_received("incoming/a.h5", "v1")  # a repeated event changes nothing
    assert state.get("file#incoming/a.h5", "v#v1")["status"] == "converted"

    state.start_patch_conversion(OWNER, {"kind": "split", "x_run": "r1", "shards_total": 1}, SplitRecord())
    state.record_shard_failed(OWNER, "r1", 0, "boom")
    assert (state.get(OWNER)["status"], state.get(OWNER)["failure"]) == ("failed", "shard 0 failed: boom")
    state.record_shard_done(OWNER, "r1", 0)
    state.claim_ready(OWNER, "t", "me")
    state.start_patch_conversion(OWNER, {"kind": "split", "x_run": "r2"}, state.owner(OWNER))
    restarted = state.get(OWNER)
    assert restarted["status"] == "converting" and restarted["failed_shards"] == {}
    assert not {"shards_done", "ready_token", "ready_claimer", "failure"} & restarted.keys()

    state.claim_ready(OWNER, "t2", "me")
    state.record_labels(OWNER, {"y_version": "v9", "y_count": 1}, state.owner(OWNER), forget=("x_run",))
    relabelled = state.get(OWNER)
    assert relabelled["status"] == "waiting for images" and "x_run" not in relabelled
    assert not {"ready_token", "ready_claimer"} & relabelled.keys()
    state.record_labels(OWNER, {"y_version": "v10"}, state.owner(OWNER))
    assert state.get(OWNER)["status"] == "waiting for images", "without forgetting, the status stays"

    state.mark_failed(OWNER, "counts disagree")
    assert (state.get(OWNER)["status"], state.get(OWNER)["failure"]) == ("failed", "counts disagree")
    assert state.mark_ready(OWNER, "manifests/m", state.claim_ready(OWNER, "t", "shard 0"))
    ready = state.get(OWNER)
    assert (ready["status"], ready["manifest_key"]) == ("ready", "manifests/m") and ready["ready_at"]
    assert "failure" not in ready


def test_each_model_side_write_leaves_the_fields_its_readers_use(state):
    from pcam_pipeline.core.model_records import ModelRecord

    state.create_job(JobRecord("pcam-j", JobKind.TRAINING, dataset="d"))
    assert state.mark_job_started("pcam-j", arn="arn:j")
    started = state.get("job#pcam-j")
    assert (started["status"], started["arn"]) == ("InProgress", "arn:j") and started["started_at"]
    assert state.record_job_status("pcam-j", JobStatus.IN_PROGRESS)
    assert "reason" not in state.get("job#pcam-j") and "ended_at" not in state.get("job#pcam-j")
    state.record_job_failure("pcam-j", JobStatus.FAILED, "out of memory")
    failed = state.get("job#pcam-j")
    assert (failed["status"], failed["reason"]) == ("Failed", "out of memory") and failed["ended_at"]

    state.record_training_status("d", JobStatus.STARTING, latest_job="pcam-j")
    assert state.record_training_progress("d", "pcam-j", JobStatus.IN_PROGRESS)
    assert not state.record_training_progress("d", "pcam-older", JobStatus.IN_PROGRESS)
    state.record_training_settings("d", {"epochs": 3}, "incoming/datasets/d/training.json", "v1")
    state.record_latest_model("d", "m1")
    dataset = state.get("dataset#d")
    assert (dataset["dataset"], dataset["training_status"], dataset["latest_job"]) == ("d", "InProgress", "pcam-j")
    assert dataset["training_settings_from"] == "incoming/datasets/d/training.json#v1"
    assert (state.training_settings("d"), dataset["latest_model"]) == ({"epochs": 3}, "m1")
    assert state.training_settings("other") == {}
    state.record_training_status("d", JobStatus.FAILED, failure_reason="out of memory")
    assert not state.record_training_progress("d", "pcam-j", JobStatus.IN_PROGRESS), (
        "a late InProgress hides no failure"
    )
    assert state.get("dataset#d")["training_status"] == "Failed"

    for name in ("m-late", "m-early"):  # named against the alphabet: the order must come from created_at
        state.create_model(ModelRecord(name, "d", "pcam-j", f"s3://b/{name}", "created"))
        time.sleep(0.002)
    assert [m.model_name for m in state.models()] == ["m-late", "m-early"], "in the order they were created"


def test_attempts_that_never_closed_are_counted_by_the_next_one(state):
    state.record_file_received("incoming/k.h5", "v1")
    assert state.open_attempt("incoming/k.h5", "v1", 1) == 0
    state.close_attempt("incoming/k.h5", "v1", 1)
    assert state.open_attempt("incoming/k.h5", "v1", 2) == 0
    assert state.open_attempt("incoming/k.h5", "v1", 3) == 1  # attempt 2 never closed: its process died
    assert set(state.get("file#incoming/k.h5", "v#v1")["open_attempts"]) == {"2", "3"}


def test_a_slide_upload_is_queued_once_and_slots_are_never_over_taken(state):
    owner = "slide#s1"
    state.start_patch_conversion(owner, {"kind": "slide", "slide_id": "s1", "x_run": "r1"}, as_read=SplitRecord())
    assert state.queue_slide("s1", "r1", 6)
    assert not state.queue_slide("s1", "r1", 6)  # a repeated Slide Ready
    assert not state.queue_slide("s1", "r0", 6)  # not the slide's current upload
    (entry,) = state.queued_slides()
    assert (entry.slide_id, entry.run_id, entry.patch_count) == ("s1", "r1", 6)
    assert state.take_transform_slot("job-a", 2) and state.take_transform_slot("job-a", 2)
    assert state.take_transform_slot("job-b", 2) and not state.take_transform_slot("job-c", 2)
    state.free_transform_slot("job-a")
    state.free_transform_slot("job-a")
    assert state.take_transform_slot("job-c", 2)
    assert sorted(slot["job"] for slot in state.transform_slots().values()) == ["job-b", "job-c"]
    state.unqueue_slide(entry)
    assert state.queued_slides() == []


def test_one_dispatcher_holds_the_lease_until_it_releases_it_or_it_expires(state):
    assert state.take_dispatch_lease("first", 60)
    assert not state.take_dispatch_lease("second", 60)
    state.release_dispatch_lease("second")  # not the holder: changes nothing
    assert not state.take_dispatch_lease("second", 60)
    state.release_dispatch_lease("first")
    assert state.take_dispatch_lease("second", 0.05)
    time.sleep(0.1)
    assert state.take_dispatch_lease("third", 60), "an expired lease is free"

"""The scoring queue on in-memory fakes: at most MaxConcurrentTransformJobs slide transforms at once, oldest
slides first, several slides per job when they are ready together; SageMaker refusing for capacity is a
wait, never a failure; a failed batch retries each slide alone; repeated and concurrent triggers start
nothing twice and write no result twice."""

import dataclasses
import json
import threading
from datetime import UTC, datetime, timedelta

import numpy as np

from pcam_pipeline.aws import events
from pcam_pipeline.core import keys
from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.core.records import ScoringQueueEntry
from pcam_pipeline.core.statuses import JobStatus, ScoringStatus
from pcam_pipeline.scoring.batches import BatchPolicy, next_batch
from pcam_pipeline.state import slide_pk
from tests.fakes import flow_on_fakes, model_settings
from tests.unit.test_sagemaker_flow import job_event, make_ready, slide_ready, train_and_promote, write_outputs


def world_with_slots(slots: int, **settings):
    world = flow_on_fakes(dataclasses.replace(model_settings(), max_transform_jobs=slots, **settings))
    train_and_promote(world)
    return world


def job_of(world, slide_id: str) -> str:
    return world.state.slide(slide_id).scoring_job


def scoring_jobs(world) -> list[str]:
    return world.launcher.names(JobKind.SLIDE_SCORING)


def finish(world, name: str, status: str = "Completed", lost: str | None = None) -> dict:
    """The job ends; when it completed, each of its slides' outputs are written (but not ``lost``'s)."""
    if status == "Completed":
        for member in world.state.job(name).slides:
            if member["slide_id"] != lost:
                write_outputs(world, name, np.linspace(0, 1, member["patch_count"]), member["slide_id"])
    return job_event(world, JobKind.SLIDE_SCORING, status, name=name)


def running(world) -> list[str]:
    return [slot["job"] for slot in world.state.transform_slots().values() if slot.get("job")]


def entry(slide: str, patches: int = 10, age: float = 0, alone: bool = False) -> ScoringQueueEntry:
    queued_at = (NOW - timedelta(seconds=age)).isoformat()
    return ScoringQueueEntry(slide_id=slide, run_id="r", patch_count=patches, queued_at=queued_at, alone=alone)


NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_a_batch_closes_when_its_oldest_slide_has_waited_the_window_or_the_patches_fill_it():
    policy = BatchPolicy(window_seconds=60, max_patches=25)
    assert next_batch([entry("a", age=59), entry("b", age=1)], policy, NOW) == []  # still filling
    assert next_batch([entry("a", age=60), entry("b", age=1)], policy, NOW) == [entry("a", age=60), entry("b", age=1)]
    full = [entry("a"), entry("b"), entry("c", patches=5), entry("d")]
    assert [e.slide_id for e in next_batch(full, policy, NOW)] == ["a", "b", "c"]  # 25 patches: due at once
    assert [e.slide_id for e in next_batch([entry("big", patches=90)], policy, NOW)] == ["big"]  # alone, at once
    assert [e.slide_id for e in next_batch([entry("a", age=61), entry("big", patches=90)], policy, NOW)] == ["a"]
    retried = [entry("x", alone=True), entry("a", age=61)]
    assert [e.slide_id for e in next_batch(retried, policy, NOW)] == ["x"]  # a retried slide goes alone, at once
    assert [e.slide_id for e in next_batch([entry("a", age=61), entry("x", alone=True)], policy, NOW)] == ["a"]
    assert next_batch([], policy, NOW) == []


def test_slides_beyond_the_cap_wait_and_start_together_in_one_job_when_a_slot_frees():
    world = world_with_slots(2)
    for slide_id in ("a", "b", "c", "d"):
        slide_ready(world, slide_id)
    assert len(scoring_jobs(world)) == 2 and job_of(world, "a") != job_of(world, "b")
    assert [world.state.slide(s).scoring_status for s in "cd"] == [ScoringStatus.QUEUED] * 2
    assert [e.slide_id for e in world.state.queued_slides()] == ["c", "d"]
    recorded = [r for r in world.state.scan_all() if r["pk"].startswith("job#") and r["kind"] == "slide scoring"]
    assert len(recorded) == 2, "a batch waiting for a slot leaves no job record"
    outcome = finish(world, job_of(world, "b"))
    assert outcome["status"] == "scored" and outcome["queue"]["started"] == [["c", "d"]]
    batch = job_of(world, "c")
    assert job_of(world, "d") == batch and len(scoring_jobs(world)) == 3
    request = world.launcher.started[batch][1]
    manifest = json.loads(world.blobs.get_bytes(keys.scoring_manifest_key(batch)))
    assert (
        request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        == f"s3://data/{keys.scoring_manifest_key(batch)}"
    )
    assert manifest[0] == {"prefix": "s3://data/images/slides/"}
    assert manifest[1:] == [f"{s}/{s}-r/{s}-r-{i:07d}.jpg" for s in "cd" for i in range(6)]
    finish(world, batch)
    for slide_id in ("c", "d"):
        (scored,) = [e for e in world.publisher.of_type(events.SLIDE_SCORED) if e["slide_id"] == slide_id]
        assert scored["transform_job"] == batch and scored["patch_count"] == 6
        assert len(world.blobs.get_bytes(f"predictions/{slide_id}.csv").decode().splitlines()) == 7
    alerts_before = len(world.alerter.alerts)
    finish(world, job_of(world, "a"), status="Failed")  # a failed job frees its slot too; alone, it is alerted
    assert world.state.slide("a").scoring_status is ScoringStatus.FAILED
    assert len(world.alerter.alerts) == alerts_before + 1 and "slide a" in world.alerter.alerts[-1][0]
    assert [world.state.slide(s).scoring_status for s in "bcd"] == [ScoringStatus.SCORED] * 3
    assert running(world) == [] and world.state.queued_slides() == []


def test_slides_ready_within_the_window_share_a_job_that_starts_when_the_patches_fill_it():
    world = world_with_slots(2, scoring_batch_window_seconds=3600, scoring_batch_max_patches=12)
    assert "fills" in slide_ready(world, "a")["outcome"]  # waits for company
    assert world.flow.on_event(events.SCHEDULED_TICK, {})["started"] == []
    assert slide_ready(world, "b")["started"] == [["a", "b"]]  # 12 patches: full
    assert "fills" in slide_ready(world, "c")["outcome"]
    assert len(scoring_jobs(world)) == 1 and world.state.slide("c").scoring_status is ScoringStatus.QUEUED


def batch_of_a_and_b():
    """One slot: x runs while a and b queue; x's end starts a and b together."""
    world = world_with_slots(1)
    for slide_id in ("x", "a", "b"):
        slide_ready(world, slide_id)
    finish(world, job_of(world, "x"))
    batch = job_of(world, "a")
    assert job_of(world, "b") == batch
    return world, batch


def test_a_failed_batch_retries_each_slide_alone_and_only_a_slide_failing_alone_is_alerted():
    world, batch = batch_of_a_and_b()
    alerts_before = len(world.alerter.alerts)
    outcome = finish(world, batch, status="Failed")
    assert len(world.alerter.alerts) == alerts_before, "a failed batch is retried, not alerted"
    assert outcome["queue"]["started"] == [["a"]]  # alone now, one slot
    assert job_of(world, "a") != batch
    finish(world, job_of(world, "a"))
    alone = job_of(world, "b")
    assert alone != batch and world.state.job(alone).slides[0]["slide_id"] == "b"
    finish(world, alone, status="Failed")
    assert world.state.slide("b").scoring_status is ScoringStatus.FAILED
    assert len(world.alerter.alerts) == alerts_before + 1
    assert world.state.slide("a").scoring_status is ScoringStatus.SCORED
    assert world.state.queued_slides() == [] and running(world) == []


def test_a_slide_whose_outputs_are_lost_in_a_batch_is_retried_alone_while_the_others_keep_their_results():
    world, batch = batch_of_a_and_b()
    outcome = finish(world, batch, lost="b")
    assert outcome["retried_alone"] == ["b"]
    assert world.state.slide("a").scoring_status is ScoringStatus.SCORED
    assert not world.blobs.exists("predictions/b.csv")
    retry = job_of(world, "b")
    assert retry != batch and world.state.job(retry).slides[0]["slide_id"] == "b"
    finish(world, retry)
    assert world.state.slide("b").scoring_status is ScoringStatus.SCORED
    assert [e["slide_id"] for e in world.publisher.of_type(events.SLIDE_SCORED)].count("a") == 1


def test_two_jobs_that_scored_the_same_upload_write_its_results_once():
    world = world_with_slots(3)
    world.launcher.capacity_refusals = 2
    slide_ready(world, "a")
    slide_ready(world, "b")
    queue = world.flow.slides.queue
    model = world.state.current_model().model_name
    first, both = (dataclasses.replace(entry, model=model) for entry in world.state.queued_slides())
    # as if two dispatchers overlapped (a lease that expired under a stalled holder)
    assert queue._start([first]) == "" and queue._start([first, both]) == ""
    one, two = scoring_jobs(world)
    finish(world, two)
    finish(world, one)
    assert [e["slide_id"] for e in world.publisher.of_type(events.SLIDE_SCORED)] == ["a", "b"]


def test_sagemaker_refusing_for_capacity_keeps_the_slide_queued_without_an_alert_until_the_tick():
    world = world_with_slots(2)
    alerts_before = list(world.alerter.alerts)
    world.launcher.capacity_refusals = 1
    outcome = slide_ready(world, "s1")
    assert "no capacity" in outcome["outcome"] and outcome["started"] == []
    assert world.state.slide("s1").scoring_status is ScoringStatus.QUEUED
    assert world.alerter.alerts == alerts_before and scoring_jobs(world) == []
    assert running(world) == []  # the slot was given back
    assert not [r for r in world.state.scan_all() if r["pk"].startswith("job#") and r["kind"] == "slide scoring"]
    tick = world.flow.on_event(events.SCHEDULED_TICK, {})
    assert tick["started"] == [["s1"]] and world.state.slide("s1").scoring_status is ScoringStatus.SCORING
    assert world.flow.on_event(events.SCHEDULED_TICK, {}) == {"capacity_waits": {}, "status": "nothing queued"}


def test_a_repeated_slide_ready_after_scoring_neither_queues_nor_rescores():
    world = world_with_slots(2)
    slide_ready(world, "s1")
    finish(world, job_of(world, "s1"))
    again = world.flow.on_event(events.SLIDE_READY, {"slide_id": "s1", "run_id": "s1-r"})
    assert again == {"slide_id": "s1", "status": "nothing queued"}
    assert world.state.slide("s1").scoring_status is ScoringStatus.SCORED
    assert len(scoring_jobs(world)) == 1 and len(world.publisher.of_type(events.SLIDE_SCORED)) == 1


def test_a_repeated_job_end_frees_only_its_own_slot():
    world = world_with_slots(1)
    slide_ready(world, "a")
    slide_ready(world, "b")
    first = job_of(world, "a")
    finish(world, first)
    second = job_of(world, "b")
    finish(world, first)  # EventBridge delivers the first job's Completed again
    assert running(world) == [second]


def test_a_slot_whose_end_event_never_came_is_freed_by_the_next_dispatch():
    world = world_with_slots(1)
    slide_ready(world, "a")
    slide_ready(world, "b")
    world.state.record_job_status(job_of(world, "a"), JobStatus.COMPLETED)  # ended; its event was lost
    assert world.flow.on_event(events.SCHEDULED_TICK, {})["started"] == [["b"]]


def test_a_slide_dropped_again_while_queued_is_scored_once_for_its_new_upload():
    world = world_with_slots(1)
    slide_ready(world, "a")
    slide_ready(world, "s1")
    make_ready(world.state, slide_pk("s1"), {"kind": "slide", "slide_id": "s1"}, 6, "s1-new")
    world.flow.on_event(events.SLIDE_READY, {"slide_id": "s1", "run_id": "s1-new"})
    finish(world, job_of(world, "a"))
    (member,) = world.state.job(job_of(world, "s1")).slides  # one job for s1: the older upload's entry dropped
    assert member["run_id"] == "s1-new" and world.state.queued_slides() == []


def test_concurrent_dispatchers_never_run_more_jobs_than_slots_nor_one_slide_twice():
    world = world_with_slots(3, scoring_batch_max_patches=6)  # one slide per job
    world.launcher.capacity_refusals = 12  # every slide is queued; nothing starts yet
    for index in range(12):
        slide_ready(world, f"s{index:02d}")
    assert scoring_jobs(world) == [] and len(world.state.queued_slides()) == 12
    barrier = threading.Barrier(6)

    def tick():
        barrier.wait()
        world.flow.on_event(events.SCHEDULED_TICK, {})

    threads = [threading.Thread(target=tick) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(running(world)) == 3 and sorted(running(world)) == sorted(scoring_jobs(world))
    assert sorted(job_of(world, s) for s in ("s00", "s01", "s02")) == sorted(scoring_jobs(world))  # the oldest
    assert len(world.state.queued_slides()) == 9


def test_slides_to_be_scored_with_different_models_never_share_a_job():
    policy = BatchPolicy(window_seconds=0, max_patches=100)
    queued = [entry("a"), dataclasses.replace(entry("b"), model="other"), entry("c")]
    assert [e.slide_id for e in next_batch(queued, policy, NOW)] == ["a", "c"]


def second_model(world) -> str:
    """Another dataset's model, evaluated and servable, not yet current."""
    from tests.unit.test_sagemaker_flow import split_ready

    split_ready(world, "train", dataset="second")
    split_ready(world, "valid", dataset="second")
    job_event(world, JobKind.TRAINING, "Completed")
    return next(m.model_name for m in world.state.models() if m.dataset == "second")


def test_a_rescored_slide_gets_new_results_naming_the_model_and_the_previous_one():
    world = world_with_slots(2)
    first_model = world.state.current_model().model_name
    slide_ready(world, "s1")
    finish(world, job_of(world, "s1"))
    newer = second_model(world)
    assert world.state.queue_rescore("s1", "by ops at noon", newer)
    assert not world.state.queue_rescore("s1", "by ops at noon", newer), "once per request"
    assert not world.state.queue_rescore("missing", "by ops at noon")
    world.flow.on_event(events.SCHEDULED_TICK, {})
    (rescoring,) = [n for n in scoring_jobs(world) if n != job_of(world, "s1")]
    assert world.state.job(rescoring).model_name == newer
    assert world.state.slide("s1").scoring_status is ScoringStatus.SCORED  # the old result stands meanwhile
    finish(world, rescoring)
    first, second = [e for e in world.publisher.of_type(events.SLIDE_SCORED) if e["slide_id"] == "s1"]
    assert (first["model_name"], first["previous_model"]) == (first_model, None)
    assert (second["model_name"], second["previous_model"]) == (newer, first_model)
    assert json.loads(world.blobs.get_bytes("predictions/s1.json"))["model_name"] == newer
    finish(world, rescoring)  # a repeated Completed writes nothing again
    assert len([e for e in world.publisher.of_type(events.SLIDE_SCORED) if e["slide_id"] == "s1"]) == 2


def test_with_rescore_on_promotion_a_promoted_model_rescores_every_scored_slide_once():
    world = world_with_slots(2, rescore_on_promotion=True)
    for slide_id in ("a", "b"):
        slide_ready(world, slide_id)
        finish(world, job_of(world, slide_id))
    newer = second_model(world)
    world.flow.registry.promote(newer, by="ops")
    (promoted,) = [e for e in world.publisher.of_type(events.MODEL_PROMOTED) if e["model_name"] == newer]
    outcome = world.flow.on_event(events.MODEL_PROMOTED, promoted)
    assert sorted(outcome["rescored"]) == ["a", "b"] and outcome["started"] == [["a", "b"]]
    assert world.flow.on_event(events.MODEL_PROMOTED, promoted)["rescored"] == []  # a repeated delivery
    (rescoring,) = scoring_jobs(world)[2:]
    assert world.state.job(rescoring).model_name == newer
    finish(world, rescoring)
    assert {e["slide_id"] for e in world.publisher.of_type(events.SLIDE_SCORED) if e["model_name"] == newer} == {
        "a",
        "b",
    }


def test_without_rescore_on_promotion_scored_slides_keep_their_results():
    world = world_with_slots(2)
    slide_ready(world, "a")
    finish(world, job_of(world, "a"))
    newer = second_model(world)
    world.flow.registry.promote(newer, by="ops")
    assert world.flow.on_event(events.MODEL_PROMOTED, {"model_name": newer})["rescored"] == []
    assert len(scoring_jobs(world)) == 1


def test_a_slide_whose_results_fail_unforeseen_is_retried_alone_then_failed_and_alerted_and_the_batch_is_scored(
    monkeypatch,
):
    from pcam_pipeline.scoring import slide_results

    written = slide_results.prediction_csv

    def exhausted_for_b(slide_id, *args):
        if slide_id == "b":
            raise MemoryError("a defect, or a slide no check foresaw")
        return written(slide_id, *args)

    monkeypatch.setattr(slide_results, "prediction_csv", exhausted_for_b)
    world, batch = batch_of_a_and_b()
    alerts_before = len(world.alerter.alerts)
    outcome = finish(world, batch)
    assert outcome["retried_alone"] == ["b"] and world.state.slide("a").scoring_status is ScoringStatus.SCORED
    finish(world, job_of(world, "b"))
    failed = world.state.slide("b")
    assert failed.scoring_status is ScoringStatus.FAILED
    assert "the slide's results could not be written (MemoryError" in failed.scoring_failure
    assert len(world.alerter.alerts) == alerts_before + 1 and "slide b" in world.alerter.alerts[-1][0]
    assert not world.blobs.exists("predictions/b.csv") and world.state.queued_slides() == []


def test_with_no_current_model_only_slides_queued_with_a_named_model_start_and_the_others_wait():
    world = flow_on_fakes(model_settings())
    for slide_id in ("named", "unnamed"):
        make_ready(world.state, slide_pk(slide_id), {"kind": "slide", "slide_id": slide_id}, 6, f"{slide_id}-r")
    world.state.queue_rescore("named", "smoke", model="pcam-smoke-model")
    world.state.queue_slide("unnamed", "unnamed-r", 6)
    outcome = world.flow.slides.queue.dispatch()
    assert outcome["started"] == [["named"]]
    assert [entry.slide_id for entry in world.state.queued_slides()] == ["unnamed"], "it waits for a current model"
    (started,) = scoring_jobs(world)
    assert world.launcher.started[started][1]["ModelName"] == "pcam-smoke-model"

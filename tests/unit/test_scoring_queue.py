"""The scoring queue on in-memory fakes: at most MaxConcurrentTransformJobs slide transforms at once, oldest
slide first; SageMaker refusing for capacity is a wait, never a failure; repeated and concurrent triggers
start nothing twice."""

import dataclasses
import threading

import numpy as np

from pcam_pipeline import events
from pcam_pipeline.state import slide_pk
from pcam_pipeline.statuses import JobKind, JobStatus, ScoringStatus
from tests.fakes import flow_on_fakes, model_settings
from tests.unit.test_sagemaker_flow import job_event, make_ready, slide_ready, train_and_promote, write_outputs


def world_with_slots(slots: int):
    world = flow_on_fakes(dataclasses.replace(model_settings(), max_transform_jobs=slots))
    train_and_promote(world)
    return world


def scoring_jobs(world) -> dict[str, str]:
    """Slide → name of each slide-scoring job SageMaker was asked to start."""
    return {
        request["Tags"][0]["Value"]: name
        for name, (kind, request) in world.launcher.started.items()
        if kind is JobKind.SLIDE_SCORING
    }


def finish(world, name: str, status: str = "Completed") -> dict:
    write_outputs(world, name, np.linspace(0, 1, 6))
    return job_event(world, JobKind.SLIDE_SCORING, status, name=name)


def test_slides_beyond_the_cap_wait_in_the_queue_and_start_oldest_first_as_jobs_end():
    world = world_with_slots(2)
    for slide_id in ("a", "b", "c", "d"):
        slide_ready(world, slide_id)
    assert set(scoring_jobs(world)) == {"a", "b"}
    assert [world.state.slide(s).scoring_status for s in "abcd"] == [ScoringStatus.SCORING] * 2 + [
        ScoringStatus.QUEUED
    ] * 2
    assert [entry.slide_id for entry in world.state.queued_slides()] == ["c", "d"]
    outcome = finish(world, scoring_jobs(world)["b"])
    assert outcome["status"] == "scored" and outcome["queue"]["started"] == ["c"]
    assert set(scoring_jobs(world)) == {"a", "b", "c"}
    finish(world, scoring_jobs(world)["a"], status="Failed")  # a failed job frees its slot too
    assert set(scoring_jobs(world)) == {"a", "b", "c", "d"} and world.state.queued_slides() == []
    for slide_id in ("c", "d"):
        finish(world, scoring_jobs(world)[slide_id])
    assert [world.state.slide(s).scoring_status for s in "bcd"] == [ScoringStatus.SCORED] * 3
    assert all(not slot.get("job") for slot in world.state.transform_slots().values())


def test_sagemaker_refusing_for_capacity_keeps_the_slide_queued_without_an_alert_until_the_tick():
    world = world_with_slots(2)
    alerts_before = list(world.alerter.alerts)
    world.launcher.capacity_refusals = 1
    outcome = slide_ready(world, "s1")
    assert "no capacity" in outcome["outcome"] and outcome["started"] == []
    assert world.state.slide("s1").scoring_status is ScoringStatus.QUEUED
    assert world.alerter.alerts == alerts_before and scoring_jobs(world) == {}
    assert all(not slot.get("job") for slot in world.state.transform_slots().values())  # the slot was given back
    tick = world.flow.on_event(events.SCHEDULED_TICK, {})
    assert tick["started"] == ["s1"] and world.state.slide("s1").scoring_status is ScoringStatus.SCORING
    assert world.flow.on_event(events.SCHEDULED_TICK, {}) == {"status": "nothing queued"}


def test_a_repeated_slide_ready_after_scoring_neither_queues_nor_rescores():
    world = world_with_slots(2)
    slide_ready(world, "s1")
    finish(world, scoring_jobs(world)["s1"])
    again = world.flow.on_event(events.SLIDE_READY, {"slide_id": "s1", "run_id": "s1-r"})
    assert again == {"slide_id": "s1", "status": "nothing queued"}
    assert world.state.slide("s1").scoring_status is ScoringStatus.SCORED
    assert len(scoring_jobs(world)) == 1 and len(world.publisher.of_type(events.SLIDE_SCORED)) == 1


def test_a_repeated_job_end_frees_only_its_own_slot():
    world = world_with_slots(1)
    slide_ready(world, "a")
    slide_ready(world, "b")
    first = scoring_jobs(world)["a"]
    finish(world, first)
    second = scoring_jobs(world)["b"]
    finish(world, first)  # EventBridge delivers the first job's Completed again
    assert [slot["job"] for slot in world.state.transform_slots().values() if slot.get("job")] == [second]


def test_a_slot_whose_end_event_never_came_is_freed_by_the_next_dispatch():
    world = world_with_slots(1)
    slide_ready(world, "a")
    slide_ready(world, "b")
    name = scoring_jobs(world)["a"]
    world.state.record_job_status(name, JobStatus.COMPLETED)  # ended; its event was lost on the way
    assert world.flow.on_event(events.SCHEDULED_TICK, {})["started"] == ["b"]


def test_a_slide_dropped_again_while_queued_is_scored_once_for_its_new_upload():
    world = world_with_slots(1)
    slide_ready(world, "a")
    slide_ready(world, "s1")
    make_ready(world.state, slide_pk("s1"), {"kind": "slide", "slide_id": "s1"}, 6, "s1-new")
    world.flow.on_event(events.SLIDE_READY, {"slide_id": "s1", "run_id": "s1-new"})
    finish(world, scoring_jobs(world)["a"])
    job = world.state.job(scoring_jobs(world)["s1"])  # one job for s1: the older upload's entry was dropped
    assert job.run_id == "s1-new" and world.state.queued_slides() == []


def test_concurrent_dispatchers_never_run_more_jobs_than_slots():
    world = world_with_slots(3)
    world.launcher.capacity_refusals = 12  # every slide is queued; nothing starts yet
    for index in range(12):
        slide_ready(world, f"s{index:02d}")
    assert scoring_jobs(world) == {} and len(world.state.queued_slides()) == 12
    barrier = threading.Barrier(6)

    def tick():
        barrier.wait()
        world.flow.on_event(events.SCHEDULED_TICK, {})

    threads = [threading.Thread(target=tick) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    running = [slot["job"] for slot in world.state.transform_slots().values() if slot.get("job")]
    assert len(running) == 3 and sorted(running) == sorted(scoring_jobs(world).values())
    assert set(scoring_jobs(world)) == {"s00", "s01", "s02"}  # the oldest
    assert len(world.state.queued_slides()) == 9

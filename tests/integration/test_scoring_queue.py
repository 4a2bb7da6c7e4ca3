"""The scoring queue through the local stack, whose SageMaker enforces a transform-instance quota and refuses
over it with SageMaker's own ResourceLimitExceeded. A stack of its own: the cap (MaxConcurrentTransformJobs 3)
is deliberately above the account's quota (2), as when other workloads share the account, and a job takes
at most four of these 12-patch slides (ScoringBatchMaxPatches 48), the slides ready within 2 s.
"""

import json
import time

import numpy as np
import pytest

from pcam_local.local_stack import LocalStack
from pcam_ops.cli import main
from pcam_pipeline.core import keys
from pcam_synth.synth import synth_slide, synth_split
from tests.integration.conftest import INTEGRATION, TEST_PARAMETERS, assert_every_call_was_allowed
from tests.lab import h5_bytes

pytestmark = [*INTEGRATION, pytest.mark.scenario]  # steps of one story, in order

CAP, QUOTA, SLIDES_PER_JOB = 3, 2, 4


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # A 2 s window: the slides a promotion releases are all queued before their first job forms.
    parameters = {
        **TEST_PARAMETERS,
        "MaxConcurrentTransformJobs": str(CAP),
        "ScoringBatchMaxPatches": "48",
        "ScoringBatchWindowSeconds": "2",
        "RescoreOnPromotion": "true",
    }
    with LocalStack(
        parameters=parameters, work_dir=tmp_path_factory.mktemp("queue"), transform_job_quota=QUOTA, tick_seconds=1
    ) as running:
        running.sagemaker.transform_startup_seconds = 1.5  # jobs overlap, as a burst of them does on AWS
        yield running
        assert_every_call_was_allowed(running)


def drop_slides(pipeline, prefix: str, count: int) -> list[str]:
    slide_ids = [f"{prefix}-{index:02d}" for index in range(count)]
    for index, slide_id in enumerate(slide_ids):
        patches, coords, _ = synth_slide(3, 4, np.random.default_rng(index))
        pipeline.drop(f"incoming/slides/{slide_id}.h5", h5_bytes(x=patches, coords=coords))
    return slide_ids


def statuses(stack, slide_ids) -> dict[str, str]:
    return {slide_id: (stack.state.get(f"slide#{slide_id}") or {}).get("scoring_status") for slide_id in slide_ids}


def wait_until_queued(stack, slide_ids) -> None:
    """Until every slide's queue entry is written (the slide's status says "queued" a moment before)."""
    deadline = time.monotonic() + 120
    while not set(slide_ids) <= {entry.slide_id for entry in stack.state.queued_slides()}:
        assert time.monotonic() < deadline, f"not all queued: {statuses(stack, slide_ids)}"
        time.sleep(0.5)
    assert set(statuses(stack, slide_ids).values()) == {"queued"}


def jobs_of(stack, slide_ids) -> dict[str, list[str]]:
    """Scoring job → the slides (of these) it scored."""
    jobs = {}
    for record in stack.records():
        if record["pk"].startswith("job#") and record.get("kind") == "slide scoring":
            members = [m["slide_id"] for m in record.get("slides", []) if m["slide_id"] in slide_ids]
            if members:
                jobs[record["pk"].removeprefix("job#")] = members
    return jobs


def assert_each_scored_once(stack, pipeline, slide_ids) -> None:
    assert set(statuses(stack, slide_ids).values()) == {"scored"}
    for slide_id in slide_ids:
        (event,) = pipeline.events_for("Slide Scored", slide_id=slide_id)
        assert event["detail"]["patch_count"] == 12
        assert len(stack.read(f"predictions/{slide_id}.csv").decode().splitlines()) == 13
        assert stack.list_keys(f"predictions/{slide_id}.png")
    assert stack.state.queued_slides() == []
    assert not any(slot.get("job") for slot in stack.state.transform_slots().values()), "a slot stayed taken"


def test_slides_released_together_share_jobs_and_wait_for_quota_instead_of_failing(stack, pipeline, alerts):
    alerts()
    slide_ids = drop_slides(pipeline, "morning", 12)
    pipeline.settle()
    assert set(statuses(stack, slide_ids).values()) == {"waiting for a model"}

    rng = np.random.default_rng(21)
    # The first jobs run until a third start was refused, however fast this machine scores them.
    stack.sagemaker.hold_transforms_until_refusals = stack.sagemaker.quota_refusals + 1
    try:
        for split, count in (("train", 300), ("valid", 100), ("test", 160)):
            pipeline.drop_split("queued", split, *synth_split(count, rng))
        pipeline.settle()  # trained, evaluated, promoted: the twelve slides are queued at once and all scored
    finally:
        stack.sagemaker.hold_transforms_until_refusals = None

    jobs = jobs_of(stack, slide_ids)
    sizes = sorted(len(members) for members in jobs.values())
    # 12 slides in jobs of at most 4: three jobs, or four when a slide reaches the queue after its batch left
    assert sum(sizes) == 12 and max(sizes) == SLIDES_PER_JOB and len(sizes) <= 4, jobs
    assert stack.sagemaker.quota_refusals >= 1, "the cap above the quota made SageMaker refuse a start"
    assert stack.sagemaker.peak_transform_instances == QUOTA
    assert_each_scored_once(stack, pipeline, slide_ids)
    assert all(messages == [] for messages in stack.dead_letters().values())
    assert alerts() == [], "waiting for quota is not a failure"


def test_the_cap_holds_when_the_quota_would_allow_more(stack, pipeline):
    stack.sagemaker.transform_quota = 0  # the account's transform instances are all in use elsewhere
    slide_ids = drop_slides(pipeline, "burst", 9)
    wait_until_queued(stack, slide_ids)
    refusals = stack.sagemaker.quota_refusals
    time.sleep(2.5)  # the scheduled tick keeps trying, and keeps waiting
    assert stack.sagemaker.quota_refusals > refusals
    assert set(statuses(stack, slide_ids).values()) == {"queued"}

    stack.sagemaker.peak_transform_instances = 0
    stack.sagemaker.transform_quota = 10  # the other workload ended: the next tick starts what the cap allows
    pipeline.settle()
    assert stack.sagemaker.peak_transform_instances == CAP
    assert sorted(len(members) for members in jobs_of(stack, slide_ids).values()) == [1, 4, 4]
    assert_each_scored_once(stack, pipeline, slide_ids)


def test_batched_slides_are_scored_when_sagemaker_names_outputs_by_base_name(stack, pipeline):
    """SageMaker's docs leave open whether a ManifestFile entry's output keeps its relative path; the first
    test ran with relative paths, this one with base names only, all of one job's outputs in one folder."""
    stack.sagemaker.manifest_output_names = "base name"
    try:
        slide_ids = drop_slides(pipeline, "flat", 8)
        pipeline.settle()
    finally:
        stack.sagemaker.manifest_output_names = "relative path"

    jobs = jobs_of(stack, slide_ids)
    assert max(len(members) for members in jobs.values()) > 1, f"slides shared a job: {jobs}"
    assert_each_scored_once(stack, pipeline, slide_ids)
    for job, members in jobs.items():
        for slide_id in members:
            run = stack.state.get(f"slide#{slide_id}")["x_run"]
            outputs = sorted(stack.list_keys(f"scores/{job}/{run}-"))
            assert len(outputs) == 12, "each slide's outputs lie flat in the job's folder, none overwritten"
            written = [json.loads(stack.read(key))["prediction"][1] for key in outputs]
            rows = stack.read(f"predictions/{slide_id}.csv").decode().splitlines()[1:]
            assert [float(row.split(",")[6]) for row in rows] == pytest.approx(written, abs=1e-6), "raw_score"


def test_one_bad_slide_fails_alone_and_the_rest_of_its_batch_is_scored(stack, pipeline, alerts):
    alerts()
    stack.sagemaker.transform_quota = 0
    slide_ids = drop_slides(pipeline, "mixed", 4)
    wait_until_queued(stack, slide_ids)
    bad = slide_ids[2]
    image_prefix = stack.state.slide(bad).image_prefix
    patch = image_prefix + keys.patch_file_name(5, image_prefix)
    stack.s3.put_object(Bucket=stack.bucket, Key=patch, Body=b"not a JPEG")
    stack.sagemaker.transform_quota = 10
    pipeline.settle()

    jobs = jobs_of(stack, slide_ids)
    assert sorted(max(jobs.values(), key=len)) == slide_ids, "the four were one batch first"
    assert sorted(len(members) for members in jobs.values()) == [1, 1, 1, 1, 4], "then each alone"
    good = [slide_id for slide_id in slide_ids if slide_id != bad]
    assert set(statuses(stack, good).values()) == {"scored"}
    record = stack.state.slide(bad)
    assert record.scoring_status == "failed" and "could not be read as an image" in record.scoring_failure
    assert not stack.list_keys(f"predictions/{bad}.csv")
    (alert,) = alerts()
    assert f"slide {bad}" in alert["Subject"]


def summary_of(stack, slide_id) -> dict:
    return json.loads(stack.read(f"predictions/{slide_id}.json"))


def test_operators_rescore_one_slide_or_all_through_the_queue(stack, pipeline, monkeypatch, capsys):
    for name, value in stack.environment().items():
        monkeypatch.setenv(name, value)
    model = stack.state.current_model().model_name
    before = summary_of(stack, "morning-00")
    assert main(["rescore", "--slide", "morning-00", "--stack", "pcam-local"]) == 0
    assert "queued 1 slide(s)" in capsys.readouterr().out
    pipeline.settle()
    after = summary_of(stack, "morning-00")
    assert after["transform_job"] != before["transform_job"] and after["scored_at"] > before["scored_at"]
    assert (after["model_name"], after["previous_model"]) == (model, model)
    assert len(pipeline.events_for("Slide Scored", slide_id="morning-00")) == 2

    assert main(["rescore", "--slide", "no-such-slide", "--stack", "pcam-local"]) == 1
    assert main(["rescore", "--all", "--model", "no-such-model", "--stack", "pcam-local"]) == 1
    scored = {r["slide_id"] for r in stack.records() if r.get("scoring_status") == "scored"}
    capsys.readouterr()
    assert main(["rescore", "--all", "--dry-run", "--stack", "pcam-local"]) == 0
    assert f"would queue {len(scored)} slide(s)" in capsys.readouterr().out
    assert stack.state.queued_slides() == [], "a dry run queues nothing"
    assert main(["rescore", "--all", "--stack", "pcam-local"]) == 0
    assert f"queued {len(scored)} slide(s)" in capsys.readouterr().out
    pipeline.settle()
    for slide_id in scored:
        assert pipeline.events_for("Slide Scored", slide_id=slide_id)[-1]["detail"]["previous_model"] == model
    assert stack.state.queued_slides() == []


def test_a_promoted_model_rescores_every_scored_slide(stack, pipeline, monkeypatch):
    for name, value in stack.environment().items():
        monkeypatch.setenv(name, value)
    rng = np.random.default_rng(5)
    for split, count in (("train", 300), ("valid", 100)):
        pipeline.drop_split("newer", split, *synth_split(count, rng))
    pipeline.settle()  # trained; without a test split of its own it waits, servable, for an operator
    newer = next(r["model_name"] for r in stack.state.query("models", "model#") if r.get("dataset") == "newer")
    scored = {r["slide_id"] for r in stack.records() if r.get("scoring_status") == "scored"}
    assert main(["promote", newer, "--stack", "pcam-local", "--by", "dr-ops", "--reason", "newer data"]) == 0
    pipeline.settle()
    for slide_id in scored:
        last = pipeline.events_for("Slide Scored", slide_id=slide_id)[-1]["detail"]
        assert last["model_name"] == newer, slide_id
    assert stack.state.queued_slides() == []

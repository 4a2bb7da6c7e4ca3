"""The scoring queue through the local stack, whose SageMaker enforces a transform-instance quota and refuses
over it with SageMaker's own ResourceLimitExceeded. A stack of its own: the cap (MaxConcurrentTransformJobs 3)
is deliberately above the account's quota (2), as when other workloads share the account.
"""

import time

import numpy as np
import pytest

from pcam_local.local_stack import LocalStack
from pcam_local.synth import synth_slide, synth_split
from tests.integration.conftest import INTEGRATION, TEST_PARAMETERS, assert_every_call_was_allowed, h5_bytes

pytestmark = [*INTEGRATION, pytest.mark.scenario]  # steps of one story, in order

CAP, QUOTA = 3, 2


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    parameters = {**TEST_PARAMETERS, "MaxConcurrentTransformJobs": str(CAP)}
    with LocalStack(
        parameters=parameters, work_dir=tmp_path_factory.mktemp("queue"), transform_job_quota=QUOTA, tick_seconds=1
    ) as running:
        yield running
        assert_every_call_was_allowed(running)


def drop_slides(pipeline, prefix: str, count: int) -> list[str]:
    slide_ids = [f"{prefix}-{index}" for index in range(count)]
    for index, slide_id in enumerate(slide_ids):
        patches, coords, _ = synth_slide(3, 4, np.random.default_rng(index))
        pipeline.drop(f"incoming/slides/{slide_id}.h5", h5_bytes(x=patches, coords=coords))
    return slide_ids


def slide_statuses(stack, slide_ids) -> dict[str, str]:
    return {slide_id: (stack.state.get(f"slide#{slide_id}") or {}).get("scoring_status") for slide_id in slide_ids}


def assert_each_scored_once(stack, pipeline, slide_ids) -> None:
    assert set(slide_statuses(stack, slide_ids).values()) == {"scored"}
    for slide_id in slide_ids:
        assert len(pipeline.events_for("Slide Scored", slide_id=slide_id)) == 1, slide_id
        assert stack.list_keys(f"predictions/{slide_id}.csv")
    assert stack.state.queued_slides() == []
    assert not any(slot.get("job") for slot in stack.state.transform_slots().values()), "a slot stayed taken"


def test_slides_released_at_once_by_a_promotion_wait_for_quota_instead_of_failing(stack, pipeline, alerts):
    alerts()
    slide_ids = drop_slides(pipeline, "morning", 8)
    pipeline.settle()
    assert set(slide_statuses(stack, slide_ids).values()) == {"waiting for a model"}

    rng = np.random.default_rng(21)
    for split, count in (("train", 300), ("valid", 100), ("test", 160)):
        pipeline.drop_split("queued", split, *synth_split(count, rng))
    pipeline.settle()  # trained, evaluated, promoted; the eight slides queued at once and all scored

    assert stack.sagemaker.quota_refusals >= 1, "the cap above the quota made SageMaker refuse a start"
    assert stack.sagemaker.peak_transform_instances == QUOTA
    assert_each_scored_once(stack, pipeline, slide_ids)
    assert stack.dead_letters() == {queue: [] for queue in stack.dead_letters()}
    assert alerts() == [], "waiting for quota is not a failure"


def test_the_cap_holds_when_the_quota_would_allow_more(stack, pipeline):
    stack.sagemaker.transform_quota = 0  # the account's transform instances are all in use elsewhere
    slide_ids = drop_slides(pipeline, "burst", 7)
    deadline = time.monotonic() + 120
    while set(slide_statuses(stack, slide_ids).values()) != {"queued"}:
        assert time.monotonic() < deadline, f"not all queued: {slide_statuses(stack, slide_ids)}"
        time.sleep(0.5)
    refusals = stack.sagemaker.quota_refusals
    time.sleep(2.5)  # the scheduled tick keeps trying, and keeps waiting
    assert stack.sagemaker.quota_refusals > refusals
    assert set(slide_statuses(stack, slide_ids).values()) == {"queued"}

    stack.sagemaker.peak_transform_instances = 0
    stack.sagemaker.transform_quota = 10  # the other workload ended: the next tick starts what the cap allows
    pipeline.settle()
    assert stack.sagemaker.peak_transform_instances == CAP
    assert_each_scored_once(stack, pipeline, slide_ids)

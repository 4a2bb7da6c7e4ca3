"""Scoring at lab scale (run by `make bench`; not a test).

On the local stack, whose SageMaker allows 2 transform instances at once (`--transform-job-quota 2`, the
template's default cap): a model is trained, then 100 slides of 400 patches are dropped at once. Reports
whether every slide was scored (one "Slide Scored" each), how many transform jobs scored them, SageMaker's
quota refusals, dead letters, alerts and the wall time from the drop to the last result.

Then a modelled AWS figure for the same 100 slides, one job per slide (the design before the scoring
queue) against the jobs the queue started here: transform instance-minutes = jobs x start-up + patches /
throughput, in dollars at the default instance's list price. Only the start-up term differs between the
two designs; the sources of both constants are in docs/operations.md ("Scoring queue").
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from pcam_local.local_stack import LocalStack
from pcam_ops.smoke_costs import PRICE_PER_HOUR
from pcam_synth.drops import synth_drop

SLIDES, ROWS, COLS = 100, 20, 20  # 400 patches each
QUOTA = 2
INSTANCE = "ml.m5.xlarge"  # TransformInstanceType's default
# A transform job's start-up before its first request, billed as instance time: 3-5 minutes in public
# reports (docs/operations.md); the model takes the upper end.
STARTUP_MINUTES = 5.0
# Patches per second one ml.m5.xlarge scores with the built-in ResNet-18 on 96x96 JPEGs, one image per
# request: an assumption of the order of MXNet's published CPU figures (docs/operations.md). It is the same
# for both designs, so the saving does not depend on it.
PATCHES_PER_SECOND = 50.0


def alert_mailbox(stack: LocalStack):
    sqs = stack.sqs
    url = sqs.create_queue(QueueName="bench-mailbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns = stack._session.client("sns", endpoint_url=stack.endpoint)
    sns.subscribe(TopicArn=stack.deployed.outputs["AlertTopicArn"], Protocol="sqs", Endpoint=arn)

    def count() -> int:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])

    return count


def train(stack: LocalStack, work: Path) -> None:
    synth_drop(work / "dataset", "bench", train=300, valid=100, test=160, slides=0)
    stack.drop_directory(work / "dataset")
    assert stack.wait_until_idle(900), "training did not finish"
    assert stack.state.current_model() is not None, "no model was promoted"


def modelled_cost(jobs: int, patches: int) -> dict:
    minutes = jobs * STARTUP_MINUTES + patches / PATCHES_PER_SECOND / 60
    return {
        "jobs": jobs,
        "instance_minutes": round(minutes, 1),
        "usd": round(minutes / 60 * PRICE_PER_HOUR[INSTANCE], 2),
    }


def main() -> int:
    out = Path("bench-output")
    out.mkdir(exist_ok=True)
    work = out / "scoring-queue-stack"  # kept: the functions' logs are under logs/
    shutil.rmtree(work, ignore_errors=True)
    with LocalStack(work_dir=work, transform_job_quota=QUOTA) as stack:
        alerts = alert_mailbox(stack)
        train(stack, work)
        slides = synth_drop(work / "lab", slides=SLIDES, slide_grid=(ROWS, COLS), train=0, valid=0, test=0)
        names = {path.stem for path in slides}
        started = time.monotonic()
        stack.drop_directory(work / "lab")  # 8 uploads at a time, as a lab's sync tool would
        idle = stack.wait_until_idle(3600)
        wall = time.monotonic() - started
        scored = [e["detail"]["slide_id"] for e in stack.pipeline_events() if e["detail-type"] == "Slide Scored"]
        jobs = [
            r for r in stack.records()
            if r["pk"].startswith("job#") and r.get("kind") == "slide scoring"
            and any(m["slide_id"] in names for m in r.get("slides", []))
        ]  # fmt: skip
        dead = sum(len(messages) for messages in stack.dead_letters().values())
        results = {
            "slides": SLIDES,
            "patches_per_slide": ROWS * COLS,
            "transform_job_quota": QUOTA,
            "idle": idle,
            "scored": len(set(scored) & set(names)),
            "slide_scored_events": sum(slide_id in names for slide_id in scored),
            "transform_jobs": len(jobs),
            "slides_per_job": sorted(len(r["slides"]) for r in jobs),
            "quota_refusals": stack.sagemaker.quota_refusals,
            "peak_transform_instances": stack.sagemaker.peak_transform_instances,
            "dead_letters": dead,
            "alerts": alerts(),
            "wall_seconds": round(wall, 1),
        }
    patches = SLIDES * ROWS * COLS
    one_job_per_slide = modelled_cost(SLIDES, patches)
    queued = modelled_cost(results["transform_jobs"], patches)
    results["modelled_aws"] = {
        "instance": INSTANCE,
        "usd_per_hour": PRICE_PER_HOUR[INSTANCE],
        "startup_minutes": STARTUP_MINUTES,
        "patches_per_second": PATCHES_PER_SECOND,
        "one_job_per_slide": one_job_per_slide,
        "scoring_queue": queued,
        "cost_ratio": round(queued["instance_minutes"] / one_job_per_slide["instance_minutes"], 3),
    }
    print(
        f"{SLIDES} slides x {ROWS * COLS} patches dropped at once, transform quota {QUOTA}: "
        f"{results['scored']}/{SLIDES} scored ({results['slide_scored_events']} Slide Scored events) by "
        f"{results['transform_jobs']} transform jobs (slides per job {results['slides_per_job']}), "
        f"{results['quota_refusals']} quota refusals waited out, {dead} dead letters, {results['alerts']} alerts, "
        f"{wall:.0f} s from drop to last result"
    )
    print(
        f"modelled on AWS ({INSTANCE} ${PRICE_PER_HOUR[INSTANCE]}/h, {STARTUP_MINUTES:.0f} min start-up, "
        f"{PATCHES_PER_SECOND:.0f} patches/s): one job per slide {one_job_per_slide['instance_minutes']} "
        f"instance-min (${one_job_per_slide['usd']}) vs the queue's {queued['jobs']} jobs "
        f"{queued['instance_minutes']} instance-min (${queued['usd']}) = {results['modelled_aws']['cost_ratio']:.2f}x"
    )
    (out / "scoring_queue.json").write_text(json.dumps(results, indent=2))
    ok = idle and results["scored"] == SLIDES and results["slide_scored_events"] == SLIDES and dead == 0
    return 0 if ok and results["alerts"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

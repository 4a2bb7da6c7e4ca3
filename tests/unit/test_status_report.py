"""What `pcam status` reports as problems (it exits 1 when there are any): from state records and DLQ counts."""

from pcam_ops.report import progress, summarise
from pcam_ops.scoring_schedule import scoring_schedule


def records() -> list[dict]:
    return [
        {"pk": "file#incoming/slides/a.h5", "sk": "v#1", "key": "incoming/slides/a.h5", "version": "1",
         "status": "converted", "patch_count": 4},
        {"pk": "file#incoming/slides/bad.h5", "sk": "v#1", "key": "incoming/slides/bad.h5", "version": "1",
         "status": "quarantined", "reason": "not an HDF5 file"},
        {"pk": "job#pcam-ds-train-1", "sk": "current", "kind": "training", "dataset": "ds", "status": "Failed",
         "reason": "ClientError: no GPU", "started_at": "2026-11-27T00:00:00"},
        {"pk": "job#pcam-ds-test-1", "sk": "current", "kind": "test transform", "dataset": "ds",
         "status": "Completed", "started_at": "2026-11-27T00:01:00"},
        {"pk": "slide#s1", "sk": "current", "kind": "slide", "slide_id": "s1", "status": "ready", "x_count": 4,
         "scoring_status": "failed", "scoring_failure": "transform pcam-s1-score-1: lost"},
    ]  # fmt: skip


def test_quarantined_files_failed_jobs_failed_slides_and_dead_letters_are_problems():
    summary = summarise(records(), {"IngestDeadLetterQueue": 2, "ConvertDeadLetterQueue": 0})
    problems = "\n".join(summary["problems"])
    assert "incoming/slides/bad.h5: quarantined: not an HDF5 file" in problems
    assert "training job pcam-ds-train-1: Failed: ClientError: no GPU" in problems
    assert "slide s1: scoring failed: transform pcam-s1-score-1: lost" in problems
    assert "2 message(s) in IngestDeadLetterQueue" in problems and "ConvertDeadLetterQueue" not in problems
    assert len(summary["problems"]) == 4


def test_a_healthy_deployment_has_no_problems():
    healthy = [r for r in records() if r.get("status") not in ("quarantined", "Failed")]
    healthy[-1] = {**healthy[-1], "scoring_status": "scored", "tumour_fraction": 0.25}
    assert summarise(healthy, {"IngestDeadLetterQueue": 0})["problems"] == []


def test_progress_counts_finished_sagemaker_jobs_but_not_slide_scoring():
    steps = progress(records())
    assert steps["train, evaluate, promote (SageMaker jobs)"] == (2, 2)
    assert steps["score slides"] == (1, 1)


def scoring_records(completed_seconds: list[int]) -> list[dict]:
    """Two slides running (started 60 s and 10 s before 12:10), three queued; finished jobs took these times."""
    jobs = [
        {
            "pk": f"job#done-{i}",
            "kind": "slide scoring",
            "status": "Completed",
            "slide_id": f"d{i}",
            "started_at": "2026-11-27T11:00:00+00:00",
            "ended_at": f"2026-11-27T11:{s // 60:02d}:{s % 60:02d}+00:00",
        }
        for i, s in enumerate(completed_seconds)
    ]
    running = [
        {
            "pk": "job#run-a",
            "kind": "slide scoring",
            "status": "InProgress",
            "slide_id": "a",
            "started_at": "2026-11-27T12:09:00+00:00",
        },
        {
            "pk": "job#run-b",
            "kind": "slide scoring",
            "status": "InProgress",
            "slide_id": "b",
            "started_at": "2026-11-27T12:09:50+00:00",
        },
    ]
    queued = [
        {
            "pk": "scoring-queue",
            "sk": f"{slide}#r",
            "slide_id": slide,
            "queued_at": f"2026-11-27T12:0{i}:00+00:00",
            "patch_count": 400,
        }
        for i, slide in enumerate(["q1", "q2", "q3"])
    ]
    return [*jobs, *running, *reversed(queued)]  # fmt: skip


def test_status_tells_each_queued_slide_when_it_should_start():
    from datetime import datetime

    now = datetime.fromisoformat("2026-11-27T12:10:00+00:00")
    schedule = scoring_schedule(scoring_records([240, 300, 360]), cap=2, max_patches=400, now=now)  # typical job: 300 s
    assert [(s["slide_id"], s["state"]) for s in schedule] == [
        ("a", "running"), ("b", "running"), ("q1", "queued"), ("q2", "queued"), ("q3", "queued")
    ]  # fmt: skip
    # a's slot frees in 240 s, b's in 290 s; q1 takes a's, q2 b's, q3 a's again after q1's 300 s
    assert [s["expected_start"] for s in schedule[2:]] == ["in about 4 min", "in about 5 min", "in about 9 min"]
    with_a_free_slot = scoring_schedule(scoring_records([300]), cap=3, max_patches=400, now=now)
    assert with_a_free_slot[2]["expected_start"] == "next"
    unknown = scoring_schedule(scoring_records([]), cap=2, max_patches=400, now=now)
    assert [s["expected_start"] for s in unknown[2:]] == [
        "after 1 job(s) end",
        "after 2 job(s) end",
        "after 3 job(s) end",
    ]
    assert summarise(scoring_records([]), {}, scoring=(2, 400))["scoring_queue"][2]["slide_id"] == "q1"


def test_status_expects_queued_slides_that_fit_one_job_to_start_together_and_lists_a_running_batch():
    from datetime import datetime

    now = datetime.fromisoformat("2026-11-27T12:10:00+00:00")
    batch = {"pk": "job#batch", "kind": "slide scoring", "status": "InProgress",
             "started_at": "2026-11-27T12:09:40+00:00", "slides": [{"slide_id": "x"}, {"slide_id": "y"}]}  # fmt: skip
    records = [*scoring_records([300]), batch]
    schedule = scoring_schedule(records, cap=3, max_patches=800, now=now)
    assert [(s["slide_id"], s["state"]) for s in schedule[:4]] == [
        ("a", "running"), ("x", "running (batch of 2)"), ("y", "running (batch of 2)"), ("b", "running")
    ]  # fmt: skip
    # q1 and q2 fit one job (800 patches), which takes the first slot to free (a's, in 240 s); q3 the
    # batch's (in 280 s)
    assert [s["expected_start"] for s in schedule[4:]] == ["in about 4 min", "in about 4 min", "in about 5 min"]


def test_a_batch_job_is_listed_for_the_slides_it_scores():
    batch = {"pk": "job#b", "sk": "current", "kind": "slide scoring", "status": "Completed",
             "slides": [{"slide_id": "a"}, {"slide_id": "b"}]}  # fmt: skip
    alone = {"pk": "job#c", "sk": "current", "kind": "slide scoring", "status": "Completed", "slide_id": "c"}
    assert [job["for"] for job in summarise([batch, alone], {})["jobs"]] == ["slides a, b", "slide c"]

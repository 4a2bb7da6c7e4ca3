"""What `pcam status` reports as problems (it exits 1 when there are any): from state records and DLQ counts."""

from pcam_local.report import progress, summarise


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

"""When each queued slide is expected to start scoring: the queue grouped into jobs as the dispatcher batches
them, each slot freeing after the median duration of the slide-scoring jobs done so far."""

from __future__ import annotations

from datetime import UTC, datetime
from statistics import median

from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.core.statuses import JobStatus


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _prospective_jobs(queue: list[dict], max_patches: int) -> list[list[dict]]:
    """The queued slides grouped as the dispatcher will batch them once slots free: in order, up to
    ``max_patches`` patches per job (a slide retried alone is a job of its own)."""
    jobs: list[list[dict]] = []
    patches = 0
    for entry in queue:
        count = int(entry.get("patch_count", 0))
        if entry.get("alone") or not jobs or jobs[-1][0].get("alone") or patches + count > max_patches:
            jobs.append([entry])
            patches = count
        else:
            jobs[-1].append(entry)
            patches += count
    return jobs


def _in_about(seconds: float) -> str:
    if seconds == 0:
        return "next"
    return f"in about {seconds / 60:.0f} min" if seconds >= 90 else f"in about {seconds:.0f} s"


def scoring_schedule(records: list[dict], cap: int, max_patches: int, now: datetime | None = None) -> list[dict]:
    """Running and queued slides, with when each queued slide is expected to start.

    Queued slides are grouped into jobs as the dispatcher batches them; each of the ``cap`` slots frees
    when its job ends, after the median duration of the slide-scoring jobs completed so far, counted from
    the job's start. Without a finished job to go by, a queued slide is expected "after N job(s) end"."""
    now = now or datetime.now(UTC)
    jobs = [r for r in records if r["pk"].startswith("job#") and r.get("kind") == JobKind.SLIDE_SCORING]
    done = [
        _seconds_between(j["started_at"], j["ended_at"])
        for j in jobs
        if j.get("status") == JobStatus.COMPLETED and j.get("started_at") and j.get("ended_at")
    ]
    typical = median(done) if done else None
    running = sorted((j for j in jobs if j.get("status") == JobStatus.IN_PROGRESS), key=lambda j: j["started_at"])
    schedule = []
    for job in running:
        members = job.get("slides") or [{"slide_id": job.get("slide_id")}]
        state = "running" if len(members) == 1 else f"running (batch of {len(members)})"
        name = job["pk"].split("#", 1)[1]
        schedule += [
            {"slide_id": m["slide_id"], "state": state, "job": name, "since": job["started_at"]} for m in members
        ]
    # seconds from now until each slot frees; free slots are free now
    frees = [
        max(0.0, typical - _seconds_between(j["started_at"], now.isoformat())) if typical is not None else None
        for j in running[:cap]
    ] + [0.0] * max(0, cap - len(running))
    queue = sorted((r for r in records if r["pk"] == "scoring-queue"), key=lambda r: (r["queued_at"], r["sk"]))
    for position, batch in enumerate(_prospective_jobs(queue, max_patches)):
        if typical is None or not frees:
            ahead = max(0, position + len(running) - cap + 1)
            expected = "next" if ahead == 0 else f"after {ahead} job(s) end"
        else:
            slot = min(range(len(frees)), key=lambda i: frees[i])
            expected, frees[slot] = _in_about(frees[slot]), frees[slot] + typical
        schedule += [
            {"slide_id": e["slide_id"], "state": "queued", "since": e["queued_at"], "expected_start": expected}
            for e in batch
        ]
    return schedule

"""What happened to each dropped file, from the state table, dead-letter queues and announced events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from pcam_ops.scoring_schedule import scoring_schedule
from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.core.statuses import (
    TERMINAL_JOB_STATUSES,
    FileStatus,
    JobStatus,
    OwnerStatus,
    ScoringStatus,
)

PROBLEM_STATUSES = (FileStatus.QUARANTINED, FileStatus.FAILED)
FAILED_JOB = (JobStatus.FAILED, JobStatus.STOPPED)


def _slides_of(job: dict) -> str:
    """What a scoring job scores, in an operator's words: its slide, or the slides of its batch."""
    names = [member["slide_id"] for member in job.get("slides") or []] or [job.get("slide_id")]
    return f"slide {names[0]}" if len(names) == 1 else f"slides {', '.join(names)}"


def parse_time(text: str, option: str = "--since") -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(
            f"{option} is not a time", "ISO 8601, e.g. 2026-12-01 or 2026-12-01T09:00:00Z", text
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def records_about(
    records: list[dict], file: str | None = None, slide: str | None = None, since: str | None = None
) -> list[dict]:
    """The records `pcam status --file KEY | --slide ID [--since TIME]` reports: a dropped file with the split or
    slide it feeds; a slide with its uploads, sidecar, queue entries and the jobs that scored it; what changed
    since a time."""
    if slide:
        owned = [r for r in records if r["pk"] == f"slide#{slide}"]
        uploads = {r.get(field) for r in owned for field in ("x_key", "key")} - {None}
        records = [
            r for r in records
            if r["pk"] == f"slide#{slide}" or r.get("slide_id") == slide or r.get("key") in uploads
            or any(member.get("slide_id") == slide for member in r.get("slides", []))
        ]  # fmt: skip
    if file:
        owners = {r["pk"] for r in records if file in (r.get("x_key"), r.get("y_key"))}
        records = [r for r in records if r["pk"] == f"file#{file}" or r["pk"] in owners]
    if since:
        moment = parse_time(since)
        records = [r for r in records if _changed_at(r) and _changed_at(r) >= moment]
    return records


def _changed_at(record: dict) -> datetime | None:
    stamp = record.get("updated_at") or record.get("created_at")
    return datetime.fromisoformat(stamp) if stamp else None


def summarise(
    records: list[dict],
    dead_letter_counts: dict[str, int],
    events: list[dict] | None = None,
    scoring: tuple[int, int] | None = None,
) -> dict:
    """Every file, split, slide, job and model of a deployment, and what went wrong, from its state table.

    ``scoring``: the deployment's (MaxConcurrentTransformJobs, ScoringBatchMaxPatches), to tell queued
    slides when they start."""
    files = sorted(
        (
            {
                "key": r["key"],
                "version": r["version"],
                "status": r.get("status", ""),
                "patches": r.get("patch_count", r.get("label_count", "")),
                "reason": r.get("reason", ""),
            }
            for r in records
            if r["pk"].startswith("file#")
        ),
        key=lambda f: f["key"],
    )
    owners = [r for r in records if r["pk"].startswith(("split#", "slide#"))]
    ready = [
        {
            "name": r.get("slide_id") or f"{r['dataset']}/{r['split']}",
            "patch_count": r.get("x_count"),
            "manifest_key": r.get("manifest_key", ""),
        }
        for r in owners
        if r.get("status") == OwnerStatus.READY
    ]
    problems = [f"{f['key']}: {f['status']}: {f['reason']}" for f in files if f["status"] in PROBLEM_STATUSES]
    problems += [
        f"{r['pk'].split('#', 1)[1]}: {r.get('failure', 'failed')}"
        for r in owners
        if r.get("status") == OwnerStatus.FAILED
    ]
    waiting = [
        r["pk"].split("#", 1)[1] for r in owners if r.get("status") not in (OwnerStatus.READY, OwnerStatus.FAILED)
    ]
    jobs = sorted(
        (
            {
                "name": r["pk"].split("#", 1)[1],
                "kind": r.get("kind"),
                "for": r.get("dataset") or _slides_of(r),
                "status": r.get("status"),
                "reason": r.get("reason", ""),
                "started_at": r.get("started_at"),
                "ended_at": r.get("ended_at"),
            }
            for r in records
            if r["pk"].startswith("job#")
        ),
        key=lambda j: j["started_at"] or "",
    )
    problems += [
        f"{j['kind']} job {j['name']}: {j['status']}: {j['reason']}" for j in jobs if j["status"] in FAILED_JOB
    ]
    models = sorted(
        (r for r in records if r["pk"] == "models" and r["sk"].startswith("model#")), key=lambda m: m["created_at"]
    )
    current = next((r for r in records if r["pk"] == "models" and r["sk"] == "current"), None)
    slides = [
        {
            "slide_id": r["slide_id"],
            "patch_count": r.get("x_count"),
            "scoring_status": r.get("scoring_status", "not ready"),
            "tumour_fraction": r.get("tumour_fraction"),
            "verdict": r.get("verdict"),
            "predictions_key": r.get("predictions_key", ""),
            "whole_slide": bool(r.get("tile_plan_key")),
            "reason": r.get("scoring_failure", ""),
        }
        for r in owners
        if r.get("kind") == "slide"
    ]
    problems += [
        f"slide {s['slide_id']}: scoring failed: {s['reason']}"
        for s in slides
        if s["scoring_status"] == ScoringStatus.FAILED
    ]
    dead = {queue: count for queue, count in dead_letter_counts.items() if count}
    for queue, count in dead.items():
        problems.append(f"{count} message(s) in {queue} (fix the cause, then `pcam redrive`)")
    return {
        "files": files,
        "ready": ready,
        "waiting": waiting,
        "jobs": jobs,
        "models": models,
        "current_model": current,
        "slides": sorted(slides, key=lambda s: s["slide_id"]),
        "scoring_queue": scoring_schedule(records, *scoring) if scoring else [],
        "problems": problems,
        "events": events or [],
        "dead_letters": dead,
    }


def progress(records: list[dict]) -> dict[str, tuple[int, int]]:
    """(done, total) of each long step, from the state table, for progress bars."""
    owners = [r for r in records if r["pk"].startswith(("split#", "slide#"))]
    shards_total = sum(r.get("shards_total", 0) for r in owners)
    shards_done = sum(len(r.get("shards_done", [])) for r in owners)
    model_jobs = [r for r in records if r["pk"].startswith("job#") and r.get("kind") != JobKind.SLIDE_SCORING]
    slides = [r for r in owners if r.get("kind") == "slide"]
    return {
        "convert patches (shards)": (shards_done, shards_total),
        "train, evaluate, promote (SageMaker jobs)": (
            sum(r.get("status") in TERMINAL_JOB_STATUSES for r in model_jobs),
            len(model_jobs),
        ),
        "score slides": (
            sum(r.get("scoring_status") in (ScoringStatus.SCORED, ScoringStatus.FAILED) for r in slides),
            len(slides),
        ),
    }


def write_summary(summary: dict, out_dir: Path) -> Path:
    path = Path(out_dir) / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str))
    return path

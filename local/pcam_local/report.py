"""What happened to each dropped file, from the state table, dead-letter queues and announced events."""

from __future__ import annotations

import json
from pathlib import Path

PROBLEM_STATUSES = ("quarantined", "failed")
FAILED_JOB = ("Failed", "Stopped")


def summarise(stack) -> dict:
    records = stack.records()
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
        if r.get("status") == "ready"
    ]
    problems = [f"{f['key']}: {f['status']}: {f['reason']}" for f in files if f["status"] in PROBLEM_STATUSES]
    problems += [
        f"{r['pk'].split('#', 1)[1]}: {r.get('failure', 'failed')}" for r in owners if r.get("status") == "failed"
    ]
    waiting = [r["pk"].split("#", 1)[1] for r in owners if r.get("status") not in ("ready", "failed")]
    jobs = sorted(
        (
            {
                "name": r["pk"].split("#", 1)[1],
                "kind": r.get("kind"),
                "dataset": r.get("dataset"),
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
    dead = {queue: messages for queue, messages in stack.dead_letters().items() if messages}
    for queue, messages in dead.items():
        problems.append(f"{len(messages)} message(s) in {queue}")
    return {
        "files": files,
        "ready": ready,
        "waiting": waiting,
        "jobs": jobs,
        "models": models,
        "current_model": current,
        "problems": problems,
        "events": stack.pipeline_events(),
        "dead_letters": dead,
    }


def write_summary(summary: dict, out_dir: Path) -> Path:
    path = Path(out_dir) / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str))
    return path

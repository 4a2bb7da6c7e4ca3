"""What the `pcam` command shows: its console, progress bars while the local stack works, and the tables of
files, jobs, models and slides. The commands themselves are in `cli`."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

# Piped output (make, CI logs) gets a wide console so that tables stay readable.
console = Console(width=None if sys.stdout.isatty() else 150)
# Errors go to stderr, so that `pcam status --json | jq` reads only the answer.
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 150)


def wait_with_progress(stack, timeout: float) -> bool:
    """Wait until the pipeline is idle, showing a progress bar per long step (read from the state table)."""
    from pcam_ops.report import progress

    done = threading.Event()
    outcome: list[bool] = []

    def wait() -> None:
        outcome.append(stack.wait_until_idle(timeout=timeout))
        done.set()

    threading.Thread(target=wait, daemon=True).start()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bars:
        tasks: dict[str, int] = {}
        while True:
            finished = done.wait(timeout=1.0)
            for step, (completed, total) in progress(stack.records()).items():
                if step not in tasks:
                    tasks[step] = bars.add_task(step, total=None)
                bars.update(tasks[step], completed=completed, total=total or None)
            if finished:
                return outcome[0]


def print_summary(summary: dict, elapsed: float | None, out_dir: Path | None) -> None:
    """The tables of `pcam local run` and `pcam status`; out_dir is where results were copied, if anywhere."""
    title = "Dropped files" if elapsed is None else f"Dropped files (whole pipeline: {elapsed:.1f} s)"
    table = Table(title=title)
    for column in ("file", "status", "patches", "detail"):
        table.add_column(column, overflow="fold")
    for item in summary["files"]:
        table.add_row(item["key"], item["status"], str(item.get("patches", "")), item.get("reason", ""))
    console.print(table)
    ready = Table(title="Ready for the next stages")
    for column in ("what", "patches", "manifest"):
        ready.add_column(column, overflow="fold")
    for item in summary["ready"]:
        ready.add_row(item["name"], str(item["patch_count"]), item["manifest_key"])
    console.print(ready)
    if summary["jobs"]:
        jobs = Table(title="SageMaker jobs")
        for column in ("job", "kind", "for", "status", "started", "ended", "reason"):
            jobs.add_column(column, overflow="fold")
        for job in summary["jobs"]:
            started, ended = (str(job.get(k) or "")[:19].replace("T", " ") for k in ("started_at", "ended_at"))
            jobs.add_row(job["name"], job["kind"], job["for"], job["status"], started, ended, job["reason"])
        console.print(jobs)
    if summary["models"]:
        console.print(models_table(summary["models"], summary["current_model"]))
    current = summary["current_model"]
    if current:
        figures = current.get("metrics", {})
        console.print(
            f"current model [bold]{current['model_name']}[/bold]: test AUC {figures.get('auc', 0):.3f}, "
            f"accuracy {figures.get('accuracy', 0):.3f} on {figures.get('count', 0)} patches "
            f"(evaluations/{current['model_name']}/metrics.json, roc.png)"
        )
    else:
        console.print("no model is current yet (none trained, or none passed the promotion gate)")
    if summary["slides"]:
        slides = Table(title="Slides")
        for column in ("slide", "patches", "tumour fraction", "verdict", "status", "predictions"):
            slides.add_column(column, overflow="fold")
        for item in summary["slides"]:
            fraction = "" if item["tumour_fraction"] is None else f"{item['tumour_fraction']:.1%}"
            where = item["predictions_key"] or item["reason"]
            if item["predictions_key"]:
                place = out_dir / item["predictions_key"] if out_dir else item["predictions_key"]
                report = Path(str(place)).with_suffix(".html")
                where = f"report: {report} (+ .csv, .json, .png)"
                if item.get("whole_slide"):
                    where = f"report: {report} (+ .csv, .json, .png overlay, .geojson for QuPath)"
            verdict = item.get("verdict") or ""
            slides.add_row(item["slide_id"], str(item["patch_count"]), fraction, verdict, item["scoring_status"], where)
        console.print(slides)
    if summary.get("scoring_queue"):
        queue = Table(title="Scoring queue (running and queued slides)")
        for column in ("slide", "state", "since", "expected start"):
            queue.add_column(column, overflow="fold")
        for item in summary["scoring_queue"]:
            queue.add_row(item["slide_id"], item["state"], item["since"], item.get("expected_start", ""))
        console.print(queue)
    for problem in summary["problems"]:
        console.print(f"[red]problem:[/red] {problem}")
    if out_dir is None:
        return
    console.print(
        f"results in {out_dir}/: predictions/ (reports, CSV, JSON, heatmaps), evaluations/ (metrics, ROC), manifests/, "
        "quarantine/, summary.json; logs in .local-stack/logs/"
    )


def models_table(models: list[dict], current: dict | None) -> Table:
    table = Table(title="Models (★ scores slides)")
    for column in ("", "model", "dataset", "status", "AUC", "accuracy", "recall", "precision", "F1", "decision"):
        table.add_column(column, overflow="fold")
    current_name = (current or {}).get("model_name")
    for model in models:
        figures = model.get("metrics", {})

        def figure(name: str, figures=figures) -> str:
            return "" if figures.get(name) is None else f"{figures[name]:.3f}"

        table.add_row(
            "★" if model["model_name"] == current_name else "",
            model["model_name"],
            model.get("dataset", ""),
            model.get("status", ""),
            figure("auc"),
            figure("accuracy"),
            figure("recall"),
            figure("precision"),
            figure("f1"),
            model.get("decision", {}).get("reason", model.get("failure_reason", "")),
        )
    return table


def smoke_costs_table(costs: list[dict]) -> Table:
    table = Table(title="SageMaker jobs of the smoke test (estimated at us-east-1 list prices)")
    for column in ("job", "kind", "instance", "minutes", "estimated USD"):
        table.add_column(column, overflow="fold")
    for job in costs:
        usd = "n/a" if job["estimated_usd"] is None else f"{job['estimated_usd']:.4f}"
        table.add_row(job["job"], job["kind"], str(job["instance"]), f"{job['minutes']:.1f}", usd)
    return table

"""Scoring slides: Batch Transform of a ready slide with the current model, then predictions/<slide_id>.*

A ready slide joins the scoring queue; ``dispatch`` starts its transform job when one of the
``MaxConcurrentTransformJobs`` slots is free and SageMaker has room (a quota refusal or throttling keeps it
queued: the next job end or the scheduled tick tries again). A slide that is ready before any model is
current waits (a record under ``waiting-slides``) and is queued when a model is promoted. A slide
dropped again is scored again; a result is only written for the slide's current upload, so a late job
for an older upload never overwrites a newer result.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from pcam_pipeline import events, inference_requests, keys, sagemaker_jobs, slide_results
from pcam_pipeline.errors import CapacityRefused
from pcam_pipeline.hdf5_input import FileLimits, open_hdf5, read_coords
from pcam_pipeline.job_tracker import FlowParts, JobKindBase
from pcam_pipeline.observability import logger, metrics
from pcam_pipeline.prediction_gathering import gather_tumour_probabilities
from pcam_pipeline.records import JobRecord, SlideRecord
from pcam_pipeline.state import now_iso
from pcam_pipeline.statuses import JobKind, JobStatus, OwnerStatus

# A slot taken for a start that has not happened after this long was abandoned (a start takes seconds).
ABANDONED_START = timedelta(minutes=10)


class SlideScoring(JobKindBase):
    failure_consequence = "No result is written for the slide."

    def __init__(self, parts: FlowParts):
        super().__init__(parts)
        self._threshold = parts.settings.decision_threshold
        self._slots = parts.settings.max_transform_jobs

    # ------------------------------------------------------------ starting
    def on_slide_ready(self, detail: dict) -> dict:
        logger.append_keys(slide_id=detail["slide_id"], run_id=detail["run_id"], file_key=detail.get("input_key"))
        slide_id, run_id = detail["slide_id"], detail["run_id"]
        slide = self._state.slide(slide_id)
        if not slide or slide.status is not OwnerStatus.READY or slide.x_run != run_id:
            return {"status": "ignored", "slide_id": slide_id, "reason": "not the slide's current, ready upload"}
        if self._registry.current() is None:
            self._state.mark_slide_waiting_for_model(slide_id, run_id)
            if self._registry.current() is None:  # else a model was promoted meanwhile: queue the slide now
                return {"status": "waiting for a model", "slide_id": slide_id}
        self._state.queue_slide(slide_id, run_id, slide.x_count)
        return {"slide_id": slide_id, **self.dispatch()}

    def score_waiting_slides(self) -> dict:
        """A model was promoted: the slides that waited for one join the scoring queue."""
        waiting = self._state.waiting_slides()
        for slide_id in waiting:
            slide = self._state.slide(slide_id)
            if slide and slide.status is OwnerStatus.READY:
                self._state.queue_slide(slide_id, slide.x_run, slide.x_count)
            self._state.forget_waiting_slide(slide_id)
        return {"waiting_slides": waiting, **self.dispatch()}

    def job_ended(self, job: JobRecord) -> dict:
        """A slide-scoring job ended, however it ended: its slot is free for the next queued slide."""
        self._state.free_transform_slot(job.name)
        return self.dispatch()

    def dispatch(self) -> dict:
        """Start transform jobs for queued slides, oldest first, while a slot is free and SageMaker has room.

        Runs on every trigger (a slide queued, a job ended, a model promoted, the scheduled tick); concurrent
        runs are safe: a job's name is derived from its slide, upload and model, slots are taken conditionally,
        and SageMaker refuses a second job of a name."""
        queued = self._state.queued_slides()
        if not queued:
            return {"status": "nothing queued"}
        current = self._registry.current()
        if current is None:
            return {"status": "waiting for a model", "queued": len(queued)}
        self._free_slots_of_ended_jobs()
        started, outcome = [], "every queued slide has a job"
        for entry in queued:
            slide = self._state.slide(entry.slide_id)
            if not slide or slide.x_run != entry.run_id or slide.status is not OwnerStatus.READY:
                self._state.unqueue_slide(entry)  # dropped again since: the new upload has an entry of its own
                continue
            logger.append_keys(slide_id=entry.slide_id, run_id=entry.run_id, job=None)
            job = self._scoring_job(slide, current.model_name)
            self._jobs.record(job)
            if self._state.job(job.name).status is JobStatus.STARTING:
                if not self._state.take_transform_slot(job.name, self._slots):
                    outcome = f"all {self._slots} transform slots are in use"
                    break
                try:
                    self._jobs.start_once(job, self._transform_request(job))
                except CapacityRefused as exc:
                    self._state.free_transform_slot(job.name)
                    metrics.add_metric(name="SlideScoringDeferred", unit="Count", value=1)
                    logger.info("SageMaker has no capacity; the slide stays queued", extra={"reason": str(exc)})
                    outcome = f"SageMaker has no capacity now, the queue waits: {exc}"
                    break
                started.append(entry.slide_id)
            self._state.mark_slide_scoring(entry.slide_id, entry.run_id, job.name, job.model_name)
            self._state.unqueue_slide(entry)
        still_queued = len(self._state.queued_slides())
        return {"status": "dispatched", "started": started, "still_queued": still_queued, "outcome": outcome}

    def _free_slots_of_ended_jobs(self) -> None:
        """Free the slots of jobs that ended, and of starts that never happened (a crash in between, after
        which the slide moved on): a missed event or a crash never keeps a slot taken for good."""
        for item in self._state.transform_slots().values():
            name = item.get("job")
            if not name:
                continue
            job = self._state.job(name)
            abandoned = job is not None and job.status is JobStatus.STARTING and _older_than(item["taken_at"])
            if job is None or job.status.terminal or abandoned:
                self._state.free_transform_slot(name)

    def _scoring_job(self, slide: SlideRecord, model_name: str) -> JobRecord:
        name = sagemaker_jobs.job_name(slide.slide_id, f"{model_name}|{slide.x_run}", kind="score")
        return JobRecord(
            name=name,
            kind=JobKind.SLIDE_SCORING,
            slide_id=slide.slide_id,
            run_id=slide.x_run,
            model_name=model_name,
            manifest=self._blobs.uri(slide.manifest_key),
            output_prefix=f"{keys.SCORES}{slide.slide_id}/{name}/",
            patch_count=slide.x_count,
        )

    def _transform_request(self, job: JobRecord) -> dict:
        return inference_requests.transform_request(
            self._settings,
            job.name,
            job.model_name,
            job.manifest,
            self._blobs.uri(job.output_prefix),
            {"pcam:slide": job.slide_id, "pcam:model": job.model_name},
            input_is_manifest=True,
        )

    # ------------------------------------------------------------ job kind
    def on_completed(self, job: JobRecord, detail: dict, delivery: str) -> dict:
        """Gather the predictions and write the CSV, summary and heatmap; then announce "Slide Scored".

        Outputs that cannot be assembled raise JobFailed: the slide fails, no partial CSV is written.
        """
        slide_id = job.slide_id
        slide = self._state.slide(slide_id)
        if slide.x_run != job.run_id:
            return {"status": "superseded", "slide_id": slide_id, "reason": "the slide was dropped again"}
        if slide.scored_job == job.name:
            return {"status": "already scored", "slide_id": slide_id}
        job = self._state.job(job.name)  # with the times SageMaker reported
        gathered_at = now_iso()
        probabilities = gather_tumour_probabilities(self._blobs, job.output_prefix, job.patch_count)
        coords = self._coords(slide) if slide.has_coords else None
        model = self._registry.model(job.model_name)
        figures = slide_results.summary_figures(probabilities, self._threshold)
        csv_key, summary_key, heatmap_key = (keys.prediction_key(slide_id, ext) for ext in ("csv", "json", "png"))
        dropped = self._state.file_version(slide.x_key, slide.x_version)
        summary = {
            "slide_id": slide_id,
            "input_key": slide.x_key,
            "input_version": slide.x_version,
            "dropped_at": dropped.received_at if dropped else None,
            **figures,
            "model_name": job.model_name,
            "model_metrics": model.metrics if model else {},
            "transform_job": job.name,
            "transform_started_at": job.started_at,
            "transform_ended_at": job.ended_at,
            "gathered_at": gathered_at,
            "scored_at": now_iso(),
            "csv_uri": self._blobs.uri(csv_key),
            "heatmap_uri": self._blobs.uri(heatmap_key) if coords is not None else None,
        }
        if coords is not None:
            title = f"{slide_id}  (model {job.model_name})"
            picture = slide_results.heatmap_png(coords, probabilities, title, self._threshold)
            self._blobs.put_bytes(heatmap_key, picture, "image/png")
        self._blobs.put_json(summary_key, summary)
        # One PUT: the CSV appears whole, replacing any earlier result of this slide at once.
        body = slide_results.prediction_csv(slide_id, probabilities, coords, self._threshold)
        self._blobs.put_bytes(csv_key, body, "text/csv")
        self._events.publish(events.SLIDE_SCORED, {**summary, "summary_uri": self._blobs.uri(summary_key)})
        self._state.record_slide_scored(
            slide_id,
            job.run_id,
            job.name,
            scored_at=summary["scored_at"],
            predictions_key=csv_key,
            tumour_fraction=figures["tumour_fraction"],
        )
        metrics.add_metric(name="SlidesScored", unit="Count", value=1)
        if summary["dropped_at"]:
            latency = datetime.fromisoformat(summary["scored_at"]) - datetime.fromisoformat(summary["dropped_at"])
            metrics.add_metric(name="SlideDropToResultSeconds", unit="Seconds", value=latency.total_seconds())
        logger.info("slide scored", extra={"slide_id": slide_id, **figures})
        return {"status": "scored", "slide_id": slide_id, "csv": csv_key}

    def on_failed(self, job: JobRecord, reason: str) -> None:
        self._state.record_slide_scoring_failed(job.slide_id, job.run_id, f"transform {job.name}: {reason}")

    def _coords(self, slide: SlideRecord) -> np.ndarray:
        with self._blobs.open(slide.x_source_key, slide.x_source_version) as f, open_hdf5(f, f.size) as handle:
            # Checked at ingestion already; the coordinates may declare no more rows than the slide has patches.
            return read_coords(handle, slide.x_count, FileLimits(max_patches=slide.x_count))


def _older_than(taken_at: str, age: timedelta = ABANDONED_START) -> bool:
    return datetime.now(UTC) - datetime.fromisoformat(taken_at) > age

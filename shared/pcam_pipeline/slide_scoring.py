"""Scoring slides: Batch Transform of a ready slide with the current model, then predictions/<slide_id>.*

A slide that is ready before any model is current waits (a record under ``waiting-slides``) and is
scored when a model is promoted. A slide dropped again is scored again; a result is only written
for the slide's current upload, so a late job for an older upload never overwrites a newer result.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from pcam_pipeline import events, inference_requests, keys, sagemaker_jobs, slide_results
from pcam_pipeline.hdf5_input import FileLimits, open_hdf5, read_coords
from pcam_pipeline.job_tracker import FlowParts, JobKindBase
from pcam_pipeline.observability import logger, metrics
from pcam_pipeline.prediction_gathering import gather_tumour_probabilities
from pcam_pipeline.records import JobRecord, SlideRecord
from pcam_pipeline.state import now_iso
from pcam_pipeline.statuses import JobKind, OwnerStatus


class SlideScoring(JobKindBase):
    failure_consequence = "No result is written for the slide."

    def __init__(self, parts: FlowParts):
        super().__init__(parts)
        self._threshold = parts.settings.decision_threshold

    # ------------------------------------------------------------ starting
    def on_slide_ready(self, detail: dict) -> dict:
        logger.append_keys(slide_id=detail["slide_id"], run_id=detail["run_id"], file_key=detail.get("input_key"))
        return self.score(detail["slide_id"], detail["run_id"])

    def score_waiting_slides(self) -> dict:
        waiting = self._state.waiting_slides()
        started = [self.score(slide_id)["status"] for slide_id in waiting]
        return {"status": "scoring waiting slides", "slides": waiting, "outcomes": started}

    def score(self, slide_id: str, run_id: str | None = None) -> dict:
        """Start one transform of the slide's current upload with the current model, or let it wait."""
        slide = self._state.slide(slide_id)
        if not slide or slide.status is not OwnerStatus.READY or (run_id and slide.x_run != run_id):
            return {"status": "ignored", "slide_id": slide_id, "reason": "not the slide's current, ready upload"}
        current = self._registry.current()
        if current is None:
            self._state.mark_slide_waiting_for_model(slide_id, slide.x_run)
            return {"status": "waiting for a model", "slide_id": slide_id}
        model_name = current.model_name
        name = sagemaker_jobs.job_name(slide_id, f"{model_name}|{slide.x_run}", kind="score")
        job = JobRecord(
            name=name,
            kind=JobKind.SLIDE_SCORING,
            slide_id=slide_id,
            run_id=slide.x_run,
            model_name=model_name,
            manifest=self._blobs.uri(slide.manifest_key),
            output_prefix=f"{keys.SCORES}{slide_id}/{name}/",
            patch_count=slide.x_count,
        )
        self._jobs.record(job)
        self._state.mark_slide_scoring(slide_id, slide.x_run, name, model_name)
        request = inference_requests.transform_request(
            self._settings,
            name,
            model_name,
            job.manifest,
            self._blobs.uri(job.output_prefix),
            {"pcam:slide": slide_id, "pcam:model": model_name},
            input_is_manifest=True,
        )
        started = self._jobs.start_once(job, request)
        return {"status": "scoring" if started else "already scoring", "slide_id": slide_id, "transform_job": name}

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

"""Scoring slides: Batch Transform of ready slides with the current model, then predictions/<slide_id>.*

A ready slide joins the scoring queue (``scoring_queue``), which starts transform jobs as slots and
SageMaker's capacity allow, several slides per job when they are ready close together. When a job
completes, its outputs are split back per slide: each slide gets its CSV, summary, heatmap and one
"Slide Scored". A job of several slides that fails has each of its slides retried alone, so one bad
slide cannot block the others; a slide that fails alone is recorded and alerted.

A slide that is ready before any model is current waits (a record under ``waiting-slides``) and is
queued when a model is promoted. A slide dropped again is scored again; a result is only written for
the slide's current upload, so a late job for an older upload never overwrites a newer result.
"""

from __future__ import annotations

import io
import json
from datetime import datetime

import numpy as np
from PIL import Image

from pcam_pipeline.aws import events
from pcam_pipeline.aws.observability import logger, metrics
from pcam_pipeline.core import keys
from pcam_pipeline.core.errors import JobFailed
from pcam_pipeline.core.records import JobRecord, SlideRecord
from pcam_pipeline.core.statuses import OwnerStatus
from pcam_pipeline.ingestion.hdf5_input import FileLimits, open_hdf5, read_coords
from pcam_pipeline.models.job_tracker import FlowParts, JobKindBase
from pcam_pipeline.scoring import slide_results
from pcam_pipeline.scoring.gathering import gather_tumour_probabilities
from pcam_pipeline.scoring.queue import ScoringQueue, queued_entry
from pcam_pipeline.state import now_iso
from pcam_pipeline.wsi.ingestion import load_plan, thumbnail_key
from pcam_pipeline.wsi.results import overlay_png, qupath_geojson, whole_slide_figures


class SlideScoring(JobKindBase):
    failure_consequence = "No result is written for the slide."

    def __init__(self, parts: FlowParts):
        super().__init__(parts)
        self._threshold = parts.settings.decision_threshold
        self._rescore_on_promotion = parts.settings.rescore_on_promotion
        self.queue = ScoringQueue(parts)

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
        self.queue.add(slide_id, run_id, slide.x_count)
        return {"slide_id": slide_id, **self.queue.dispatch()}

    def on_model_promoted(self, detail: dict) -> dict:
        """The slides that waited for a model join the scoring queue; with RescoreOnPromotion, so does every
        slide scored before (once per promotion: the request names the change)."""
        waiting = self._state.waiting_slides()
        for slide_id in waiting:
            slide = self._state.slide(slide_id)
            if slide and slide.status is OwnerStatus.READY:
                self.queue.add(slide_id, slide.x_run, slide.x_count)
            self._state.forget_waiting_slide(slide_id)
        current = self._registry.current()
        rescored = []
        if self._rescore_on_promotion and current and current.model_name == detail.get("model_name"):
            request = f"promotion {current.promoted_at}"
            scored = self._state.scored_slides()
            rescored = [slide.slide_id for slide in scored if self._state.queue_rescore(slide.slide_id, request)]
        return {"waiting_slides": waiting, "rescored": rescored, **self.queue.dispatch()}

    # ------------------------------------------------------------ job kind
    def on_completed(self, job: JobRecord, detail: dict, delivery: str) -> dict:
        """Split the job's predictions per slide and write each slide's results; then announce it.

        A slide whose outputs cannot be assembled gets no partial CSV: alone, its job fails (JobFailed);
        in a job of several slides, it is retried alone and the others keep their results."""
        job = self._state.job(job.name)  # with the times SageMaker reported
        members = members_of(job)
        if len(members) == 1:
            return self._write_results(job, members[0])
        outcomes, unusable = [], []
        for member in members:
            try:
                outcomes.append(self._write_results(job, member))
            except JobFailed as exc:
                unusable.append(member["slide_id"])
                logger.warning("a slide of the batch is retried alone", extra={"reason": str(exc)})
        retried = self.queue.retry_alone(job) if unusable else []
        return {"status": "scored", "slides": outcomes, "retried_alone": retried}

    def on_failed(self, job: JobRecord, reason: str) -> bool:
        """True (handled, no alert) when the job scored several slides: each is retried alone."""
        members = members_of(job)
        if len(members) > 1:
            retried = self.queue.retry_alone(job)
            logger.warning("a batch job failed; its slides are retried alone", extra={"slides": retried})
            return True
        member = members[0]
        self._state.record_slide_scoring_failed(member["slide_id"], member["run_id"], f"transform {job.name}: {reason}")
        return False

    def _write_results(self, job: JobRecord, member: dict) -> dict:
        """One slide's CSV, summary and heatmap from its share of the job's outputs; then "Slide Scored"."""
        slide_id, run_id = member["slide_id"], member["run_id"]
        logger.append_keys(slide_id=slide_id, run_id=run_id)
        slide = self._state.slide(slide_id)
        if slide.x_run != run_id:
            return {"status": "superseded", "slide_id": slide_id, "reason": "the slide was dropped again"}
        if slide.scored_job == job.name and slide.scored_run == run_id:
            return {"status": "already scored", "slide_id": slide_id}
        gathered_at = now_iso()
        probabilities = gather_tumour_probabilities(self._blobs, member["outputs"], member["patch_count"])
        if not self._state.claim_slide_results(queued_entry(member, job.model_name), job.name):
            return {"status": "scored by another job", "slide_id": slide_id}
        plan = load_plan(self._blobs, slide.tile_plan_key) if slide.tile_plan_key else None
        coords = np.asarray(plan.coords) if plan else self._coords(slide) if slide.has_coords else None
        model = self._registry.model(job.model_name)
        figures = slide_results.summary_figures(probabilities, self._threshold)
        if plan:
            figures.update(whole_slide_figures(plan, probabilities, self._threshold))
        csv_key, summary_key, heatmap_key = (keys.prediction_key(slide_id, ext) for ext in ("csv", "json", "png"))
        dropped = self._state.file_version(slide.x_key, slide.x_version)
        summary = {
            "slide_id": slide_id,
            "input_key": slide.x_key,
            "input_version": slide.x_version,
            "dropped_at": dropped.received_at if dropped else None,
            **figures,
            "model_name": job.model_name,
            "previous_model": slide.scored_model,  # of the result this one replaces, if any
            "model_metrics": model.metrics if model else {},
            "transform_job": job.name,
            "transform_started_at": job.started_at,
            "transform_ended_at": job.ended_at,
            "gathered_at": gathered_at,
            "scored_at": now_iso(),
            "csv_uri": self._blobs.uri(csv_key),
            "heatmap_uri": self._blobs.uri(heatmap_key) if coords is not None else None,
        }
        if plan:
            summary["geojson_uri"] = self._write_whole_slide_pictures(slide, plan, probabilities, job.model_name)
        elif coords is not None:
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
            run_id,
            job.name,
            scored_at=summary["scored_at"],
            scored_model=job.model_name,
            predictions_key=csv_key,
            tumour_fraction=figures["tumour_fraction"],
        )
        metrics.add_metric(name="SlidesScored", unit="Count", value=1)
        if summary["dropped_at"]:
            latency = datetime.fromisoformat(summary["scored_at"]) - datetime.fromisoformat(summary["dropped_at"])
            metrics.add_metric(name="SlideDropToResultSeconds", unit="Seconds", value=latency.total_seconds())
        logger.info("slide scored", extra={"slide_id": slide_id, **figures})
        return {"status": "scored", "slide_id": slide_id, "csv": csv_key}

    def _write_whole_slide_pictures(self, slide: SlideRecord, plan, probabilities: np.ndarray, model: str) -> str:
        """The heatmap over the slide's thumbnail, and the QuPath GeoJSON; returns the GeoJSON's URI."""
        thumbnail = Image.open(io.BytesIO(self._blobs.get_bytes(thumbnail_key(slide.tile_plan_key))))
        title = f"{slide.slide_id}  (model {model}, {plan.mpp_source})"
        picture = overlay_png(thumbnail, plan, probabilities, title, self._threshold)
        self._blobs.put_bytes(keys.prediction_key(slide.slide_id, "png"), picture, "image/png")
        geojson_key = keys.prediction_key(slide.slide_id, "geojson")
        document = qupath_geojson(slide.slide_id, plan, probabilities, self._threshold)
        self._blobs.put_bytes(geojson_key, json.dumps(document).encode(), "application/geo+json")
        return self._blobs.uri(geojson_key)

    def _coords(self, slide: SlideRecord) -> np.ndarray:
        with self._blobs.open(slide.x_source_key, slide.x_source_version) as f, open_hdf5(f, f.size) as handle:
            # Checked at ingestion already; the coordinates may declare no more rows than the slide has patches.
            return read_coords(handle, slide.x_count, FileLimits(max_patches=slide.x_count))


def members_of(job: JobRecord) -> list[dict]:
    """The slides a scoring job scored, each with where its outputs are. A job recorded before jobs held
    several slides scored one, with its outputs directly under the job's output prefix."""
    if not job.slides:
        return [{"slide_id": job.slide_id, "run_id": job.run_id, "patch_count": job.patch_count, "request": "",
                 "outputs": job.output_prefix}]  # fmt: skip
    return [
        {**member, "outputs": job.output_prefix + member["image_prefix"].removeprefix(keys.SLIDE_IMAGES)}
        for member in job.slides
    ]

"""One scored slide's results, from its share of a transform job's outputs: the prediction CSV, its summary,
the heatmap (over the thumbnail for a whole-slide image) and the QuPath GeoJSON, then "Slide Scored".

Only the slide's current upload gets results, claimed once per upload (or rescoring request), so a late job
for an older upload never overwrites a newer result and a retried job never announces twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from numpy.typing import NDArray

from pcam_evaluation_job.calibration import apply_calibration
from pcam_pipeline.aws import events
from pcam_pipeline.aws.observability import logger, metrics
from pcam_pipeline.core import keys
from pcam_pipeline.core.errors import JobFailed, RetryableError
from pcam_pipeline.core.labs import lab_of
from pcam_pipeline.core.model_records import JobRecord, ModelRecord
from pcam_pipeline.core.ports import BlobStore, EventPublisher
from pcam_pipeline.core.records import SlideRecord, present
from pcam_pipeline.core.settings import ModelSettings
from pcam_pipeline.ingestion.shard_outputs import stain_samples, tile_qc_measures
from pcam_pipeline.models.promotion import PromotedModels
from pcam_pipeline.scoring import slide_answer, slide_results
from pcam_pipeline.scoring.gathering import gather_tumour_probabilities
from pcam_pipeline.scoring.lab_metrics import emit_lab_metrics
from pcam_pipeline.scoring.lesion_evidence import false_positive_rate
from pcam_pipeline.scoring.queue import queued_entry
from pcam_pipeline.scoring.slide_answer import ScoredSlide
from pcam_pipeline.state import now_iso
from pcam_pipeline.state.leases import given_back_on_failure
from pcam_pipeline.state.views import SlideResultsState
from pcam_pipeline.wsi import stain
from pcam_pipeline.wsi.ingestion import load_plan, thumbnail_key
from pcam_pipeline.wsi.results import whole_slide_figures
from pcam_pipeline.wsi.tile_qc import classify_tiles


class SlideResultWriter:
    def __init__(
        self,
        settings: ModelSettings,
        state: SlideResultsState,
        blobs: BlobStore,
        registry: PromotedModels,
        publisher: EventPublisher,
    ):
        self._override, self._model_mpp = settings.decision_threshold, settings.model_mpp
        self._max_qc_fail, self._state, self._blobs = settings.max_qc_fail_fraction, state, blobs
        self._registry, self._events = registry, publisher

    def write(self, job: JobRecord, member: dict[str, Any]) -> dict[str, Any]:
        """``_write_results``, where any failure but a retryable AWS one is this slide's alone (JobFailed)."""
        try:
            return self._write_results(job, member)
        except (JobFailed, RetryableError, BotoCoreError, ClientError):
            raise
        except Exception as exc:  # a slide nothing foresaw (a defect, memory) must not block its batch's others
            logger.exception("a slide's results could not be written", extra={"slide_id": member["slide_id"]})
            raise JobFailed(f"the slide's results could not be written ({type(exc).__name__}: {exc})") from exc

    def _write_results(self, job: JobRecord, member: dict[str, Any]) -> dict[str, Any]:
        """One slide's CSV, summary and pictures from its share of the job's outputs; then "Slide Scored".

        Every file is made before the slide's results are claimed and any is written: a slide that cannot be
        made leaves no claim and no partial result behind."""
        slide_id, run_id = member["slide_id"], member["run_id"]
        logger.append_keys(slide_id=slide_id, run_id=run_id)
        slide = present(self._state.slide(slide_id), f"slide {slide_id}")
        model_name = present(job.model_name, f"model of {job.name}")
        if slide.x_run != run_id:
            return {"status": "superseded", "slide_id": slide_id, "reason": "the slide was dropped again"}
        if slide.scored_job == job.name and slide.scored_run == run_id:
            return {"status": "already scored", "slide_id": slide_id}
        gathered_at = now_iso()
        where = (member["outputs"], member["job_outputs"])
        raw = gather_tumour_probabilities(self._blobs, where, member["image_prefix"], member["patch_count"])
        model = self._registry.model(model_name)  # one read: its calibration, threshold and figures
        scored = self._scored_slide(slide, raw, model_name, model)
        found = scored.found_lesions()
        figures = slide_results.summary_figures(scored.probabilities, scored.threshold)
        figures["calibration"] = scored.calibration
        if scored.plan:
            figures.update(whole_slide_figures(scored.plan, scored.probabilities, scored.threshold))
        files = slide_answer.result_files(scored, found)
        dropped = self._state.file_version(slide.x_key, slide.x_version) if slide.x_key and slide.x_version else None
        times = (dropped.received_at if dropped else None, gathered_at)
        summary = slide_summary(self._blobs.uri, slide, job, figures, times, files, model)
        summary["qc"], summary["stain"] = scored.qc_summary(), scored.stain
        summary["verdict"] = scored.verdict(found)
        files = slide_answer.with_report(scored, found, files, summary)
        lease = self._state.claim_slide_results(queued_entry(member, model_name), job.name)
        if lease is None:
            return {"status": "scored by another job, or being written", "slide_id": slide_id}
        with given_back_on_failure(lambda: self._state.release_slide_results(slide_id, lease, written=False)):
            csv_key = self._publish(slide, job, model_name, files, summary)
        self._state.release_slide_results(slide_id, lease, written=True)
        metrics.add_metric(name="SlidesScored", unit="Count", value=1)
        emit_lab_metrics(summary)
        if summary["dropped_at"]:
            latency = datetime.fromisoformat(summary["scored_at"]) - datetime.fromisoformat(summary["dropped_at"])
            metrics.add_metric(name="SlideDropToResultSeconds", unit="Seconds", value=latency.total_seconds())
        logger.info("slide scored", extra={"slide_id": slide_id, **figures})
        return {"status": "scored", "slide_id": slide_id, "csv": csv_key}

    def _publish(
        self, slide: SlideRecord, job: JobRecord, model_name: str, files: dict[str, Any], summary: dict[str, Any]
    ) -> str:
        """Write the files, announce "Slide Scored" and record it (the claim's holder alone); the CSV's key."""
        csv_key, summary_key = keys.prediction_key(slide.slide_id, "csv"), keys.prediction_key(slide.slide_id, "json")
        versions = {
            key: self._blobs.put_bytes(key, body, content_type)
            for key, (body, content_type) in files.items()
            if key != csv_key
        }
        versions[summary_key] = self._blobs.put_json(summary_key, summary)
        versions[csv_key] = self._blobs.put_bytes(csv_key, *files[csv_key])  # last: replaces any earlier result at once
        # The versions written, so that a late reader fetches these files, not a newer result's.
        announced = {**summary, "summary_uri": self._blobs.uri(summary_key), "file_versions": versions}
        self._events.publish(events.SLIDE_SCORED, announced)
        self._state.record_slide_scored(
            slide.slide_id,
            present(slide.x_run, f"upload of slide {slide.slide_id}"),
            job.name,
            scored_at=summary["scored_at"],
            scored_model=model_name,
            predictions_key=csv_key,
            tumour_fraction=summary["tumour_fraction"],
            verdict=summary["verdict"]["category"],
        )
        return csv_key

    def _scored_slide(
        self, slide: SlideRecord, raw: NDArray[Any], model_name: str, model: ModelRecord | None
    ) -> ScoredSlide:
        """The slide's calibrated scores at its model's operating threshold (or the operator's override)."""
        calibration = model.calibration if model else {}
        threshold = model.operating_threshold if model and model.operating_threshold is not None else 0.5
        plan_key = slide.tile_plan_key
        plan = load_plan(self._blobs, plan_key) if plan_key else None
        return ScoredSlide(
            slide_id=slide.slide_id,
            probabilities=apply_calibration(calibration, raw),
            raw_scores=raw,
            calibration=calibration.get("method", "none"),
            false_positive_rate=false_positive_rate(model.metrics) if model else None,
            threshold=self._override if self._override is not None else threshold,
            model_name=model_name,
            plan=plan,
            thumbnail=self._blobs.get_bytes(thumbnail_key(slide.tile_plan_key))
            if plan and slide.tile_plan_key
            else None,
            coords=None if plan else self._coords(slide),
            model_mpp=self._model_mpp,
            qc=tile_qc_classes(self._blobs, slide, raw.size),
            max_qc_fail_fraction=self._max_qc_fail,
            stain=slide_stain(self._blobs, slide, model),
        )

    def _coords(self, slide: SlideRecord) -> NDArray[Any] | None:
        """An HDF5 slide's coordinates as ingestion copied them (never the drop: its staged copy expires)."""
        if slide.has_coords and not slide.coords_key:
            raise ValueError("the slide was ingested by a version that kept no copy of its coordinates: drop it again")
        return self._blobs.get_array(slide.coords_key) if slide.coords_key else None


def tile_qc_classes(blobs: BlobStore, slide: SlideRecord, count: int) -> NDArray[Any] | None:
    """Each tile's QC class from its conversion shards' measures; None for an upload converted before tiles
    were measured."""
    measures = tile_qc_measures(blobs, slide)
    return classify_tiles(measures) if measures is not None and len(measures) == count else None


def slide_stain(blobs: BlobStore, slide: SlideRecord, model: ModelRecord | None) -> dict[str, Any]:
    """The slide's stain from its conversion shards' samples, against its model's training stain."""
    training = model.training_stain if model else None
    return stain.slide_stain(stain_samples(blobs, slide), training, slide.x_stain_normalisation)


def slide_summary(
    uri: Callable[[str], str],
    slide: SlideRecord,
    job: JobRecord,
    figures: dict[str, Any],
    times: tuple[str | None, str],
    files: dict[str, Any],
    model: ModelRecord | None,
) -> dict[str, Any]:
    """The summary JSON of one scored slide (and the body of "Slide Scored"); ``times``: dropped, gathered."""
    dropped_at, gathered_at = times
    png, geojson = (keys.prediction_key(slide.slide_id, ext) for ext in ("png", "geojson"))
    summary = {
        "slide_id": slide.slide_id,
        "lab": lab_of(slide.slide_id),
        "input_key": slide.x_key, "input_version": slide.x_version, "input_sequencer": slide.x_sequencer,
        "run_id": slide.x_run,  # joins a "Slide Scoring Failed" of this upload to this success
        "dropped_at": dropped_at,
        **figures,
        "model_name": job.model_name,
        "previous_model": slide.scored_model,  # of the result this one replaces, if any
        "model_metrics": model.metrics if model else {},
        "transform_job": job.name,
        "transform_started_at": job.started_at,
        "transform_ended_at": job.ended_at,
        "gathered_at": gathered_at,
        "scored_at": now_iso(),
        "csv_uri": uri(keys.prediction_key(slide.slide_id, "csv")),
        "heatmap_uri": uri(png) if png in files else None,
        "report_uri": uri(keys.prediction_key(slide.slide_id, "html")),
    }  # fmt: skip
    if geojson in files:
        summary["geojson_uri"] = uri(geojson)
    return summary

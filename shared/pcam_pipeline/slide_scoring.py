"""Scoring slides: Batch Transform of a ready slide with the current model, then predictions/<slide_id>.*

A slide that is ready before any model is current waits (a record under ``waiting-slides``) and is
scored when a model is promoted. A slide dropped again is scored again; a result is only written
for the slide's current upload, so a late job for an older upload never overwrites a newer result.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import numpy as np
from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError

from pcam_pipeline import events, keys, sagemaker_jobs, slide_results, storage
from pcam_pipeline.errors import PipelineError
from pcam_pipeline.evaluate_model import EvaluationInputError, tumour_probability
from pcam_pipeline.hdf5_input import open_hdf5, read_coords
from pcam_pipeline.observability import logger, metrics
from pcam_pipeline.promotion import ModelRegistry
from pcam_pipeline.settings import ModelSettings
from pcam_pipeline.state import CURRENT, StateStore, file_pk, job_pk, now_iso, slide_pk

SLIDE_SCORING = "slide scoring"
WAITING_PK = "waiting-slides"
GATHER_THREADS = 32
GATHER_WINDOW = 4096  # predictions fetched per round: bounds the futures held in memory


class ScoringFailed(PipelineError):
    """A slide's predictions cannot be assembled; the slide is marked failed and operators alerted."""


def gather_tumour_probabilities(s3, bucket: str, prefix: str, count: int, threads: int = GATHER_THREADS):
    """Read ``<prefix><index:07d>.jpg.out`` for every patch, in parallel, into an array in patch order."""
    probabilities = np.empty(count, dtype=np.float64)

    def fetch(index: int) -> None:
        key = f"{prefix}{keys.patch_file_name(index)}.out"
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            raise ScoringFailed(f"the prediction of patch {index} ({key}) is missing: {exc}") from exc
        try:
            probabilities[index] = tumour_probability(body, key)
        except EvaluationInputError as exc:
            raise ScoringFailed(str(exc)) from exc

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for start in range(0, count, GATHER_WINDOW):
            list(pool.map(fetch, range(start, min(start + GATHER_WINDOW, count))))
    return probabilities


class SlideScorer:
    def __init__(
        self,
        settings: ModelSettings,
        s3,
        sagemaker,
        state: StateStore,
        publisher: events.EventPublisher,
        registry: ModelRegistry,
        start_job: Callable[..., bool],
    ):
        self._settings, self._bucket = settings, settings.bucket
        self._s3, self._sagemaker, self._state = s3, sagemaker, state
        self._events, self._registry, self._start_job = publisher, registry, start_job

    def _uri(self, key: str) -> str:
        return f"s3://{self._bucket}/{key}"

    # ------------------------------------------------------------ starting
    def on_slide_ready(self, detail: dict) -> dict:
        logger.append_keys(slide_id=detail["slide_id"], run_id=detail["run_id"], file_key=detail.get("input_key"))
        return self.score(detail["slide_id"], detail["run_id"])

    def score_waiting_slides(self) -> dict:
        waiting = [item["sk"] for item in self._state.query(WAITING_PK)]
        started = [self.score(slide_id)["status"] for slide_id in waiting]
        return {"status": "scoring waiting slides", "slides": waiting, "outcomes": started}

    def score(self, slide_id: str, run_id: str | None = None) -> dict:
        """Start one transform of the slide's current upload with the current model, or let it wait."""
        slide = self._state.get(slide_pk(slide_id))
        if not slide or slide.get("status") != "ready" or (run_id and slide["x_run"] != run_id):
            return {"status": "ignored", "slide_id": slide_id, "reason": "not the slide's current, ready upload"}
        current = self._registry.current()
        if current is None:
            self._state.put_new(WAITING_PK, slide_id, {"slide_id": slide_id, "run_id": slide["x_run"]})
            self._state.update(slide_pk(slide_id), CURRENT, {"scoring_status": "waiting for a model"})
            return {"status": "waiting for a model", "slide_id": slide_id}
        model_name = current["model_name"]
        name = sagemaker_jobs.job_name(slide_id, f"{model_name}|{slide['x_run']}", kind="score")
        job = {
            "kind": SLIDE_SCORING,
            "slide_id": slide_id,
            "run_id": slide["x_run"],
            "model_name": model_name,
            "status": "Starting",
            "manifest": self._uri(slide["manifest_key"]),
            "output_prefix": f"{keys.SCORES}{slide_id}/{name}/",
            "patch_count": slide["x_count"],
        }
        self._state.put_new(job_pk(name), CURRENT, job)
        self._state.update(
            slide_pk(slide_id),
            CURRENT,
            {"scoring_status": "scoring", "scoring_job": name, "scoring_model": model_name},
            condition=Attr("x_run").eq(slide["x_run"]),
        )
        self._state.delete(WAITING_PK, slide_id)
        request = sagemaker_jobs.transform_request(
            self._settings.sagemaker,
            name,
            model_name,
            job["manifest"],
            self._uri(job["output_prefix"]),
            {"pcam:slide": slide_id[:256], "pcam:model": model_name},
            input_is_manifest=True,
        )
        started = self._start_job(name, self._sagemaker.create_transform_job, request)
        return {"status": "scoring" if started else "already scoring", "slide_id": slide_id, "transform_job": name}

    # ------------------------------------------------------------ results
    def transform_completed(self, name: str, job: dict) -> dict:
        """Gather the predictions and write the CSV, summary and heatmap; then announce "Slide Scored"."""
        slide_id = job["slide_id"]
        slide = self._state.get(slide_pk(slide_id))
        if slide.get("x_run") != job["run_id"]:
            return {"status": "superseded", "slide_id": slide_id, "reason": "the slide was dropped again"}
        if slide.get("scored_job") == name:
            return {"status": "already scored", "slide_id": slide_id}
        started = now_iso()
        probabilities = gather_tumour_probabilities(self._s3, self._bucket, job["output_prefix"], job["patch_count"])
        coords = self._coords(slide) if slide.get("has_coords") else None
        model = self._registry.model(job["model_name"]) or {}
        threshold = self._settings.decision_threshold
        figures = slide_results.summary_figures(probabilities, threshold)
        csv_key, summary_key, heatmap_key = (keys.prediction_key(slide_id, ext) for ext in ("csv", "json", "png"))
        dropped = self._state.get(file_pk(slide["x_key"]), f"v#{slide['x_version']}") or {}
        summary = {
            "slide_id": slide_id,
            "input_key": slide["x_key"],
            "input_version": slide["x_version"],
            "dropped_at": dropped.get("received_at"),
            **figures,
            "model_name": job["model_name"],
            "model_metrics": model.get("metrics", {}),
            "transform_job": name,
            "transform_started_at": job.get("started_at"),
            "transform_ended_at": job.get("ended_at"),
            "gathered_at": started,
            "scored_at": now_iso(),
            "csv_uri": self._uri(csv_key),
            "heatmap_uri": self._uri(heatmap_key) if coords is not None else None,
        }
        if coords is not None:
            title = f"{slide_id}  (model {job['model_name']})"
            picture = slide_results.heatmap_png(coords, probabilities, title, threshold)
            self._s3.put_object(Bucket=self._bucket, Key=heatmap_key, Body=picture, ContentType="image/png")
        storage.put_json(self._s3, self._bucket, summary_key, summary)
        # One PUT: the CSV appears whole, replacing any earlier result of this slide at once.
        body = slide_results.prediction_csv(slide_id, probabilities, coords, threshold)
        self._s3.put_object(Bucket=self._bucket, Key=csv_key, Body=body, ContentType="text/csv")
        self._events.publish(events.SLIDE_SCORED, {**summary, "summary_uri": self._uri(summary_key)})
        self._state.update(
            slide_pk(slide_id),
            CURRENT,
            {
                "scoring_status": "scored",
                "scored_job": name,
                "scored_run": job["run_id"],
                "scored_at": summary["scored_at"],
                "predictions_key": csv_key,
                "tumour_fraction": figures["tumour_fraction"],
            },
            remove=("scoring_failure",),
        )
        metrics.add_metric(name="SlidesScored", unit="Count", value=1)
        if dropped.get("received_at"):
            latency = datetime.fromisoformat(summary["scored_at"]) - datetime.fromisoformat(dropped["received_at"])
            metrics.add_metric(name="SlideDropToResultSeconds", unit="Seconds", value=latency.total_seconds())
        logger.info("slide scored", extra={"slide_id": slide_id, **figures})
        return {"status": "scored", "slide_id": slide_id, "csv": csv_key}

    def scoring_failed(self, job: dict, reason: str) -> None:
        self._state.update(
            slide_pk(job["slide_id"]),
            CURRENT,
            {"scoring_status": "failed", "scoring_failure": reason},
            condition=Attr("x_run").eq(job["run_id"]),
        )

    def _coords(self, slide: dict) -> np.ndarray:
        with storage.S3RangeFile(self._s3, self._bucket, slide["x_source_key"], slide.get("x_source_version")) as f:
            with open_hdf5(f, f.size) as handle:
                return read_coords(handle, slide["x_count"])

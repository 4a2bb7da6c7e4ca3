"""`pcam smoke`: an operator's first check of a deployment, right after `sam deploy`.

Drops a tiny synthetic dataset (with its own training.json: a cheap instance type, few epochs, and
``"experiment": true``, so that its model can never become current and score real slides), a
tiny slide and a tiny whole-slide image (pyramidal TIFF) into the stack, then follows each step through
the stack's state table: settings recorded, splits and slides converted, training, evaluation, scoring.
Its slides are scored by the current model, as a lab's are; on a deployment with no current model yet, by
its own model (a rescore naming it), which still does not become current.
It prints each step's time and the estimated cost of the SageMaker jobs, and exits non-zero with the reason
on any failure.
``--clean`` removes what it dropped and what the pipeline wrote for it, never the current model or a model
it replaced (which a rollback needs). It works the same against
`pcam local up` (point boto3 at it with the variables that command prints).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import boto3

from pcam_ops.operations import rescore, stack_outputs
from pcam_ops.smoke_costs import job_costs
from pcam_pipeline.core import dropped_files, keys
from pcam_pipeline.core.model_records import JobRecord
from pcam_pipeline.core.statuses import FileStatus, JobStatus, ModelStatus, OwnerStatus, ScoringStatus
from pcam_pipeline.state import StateStore
from pcam_synth.drops import synth_drop
from pcam_synth.whole_slides import synth_wsi

SIZES = {"train": 200, "valid": 50, "test": 100}
POLL_SECONDS = 5


class SmokeFailed(Exception):
    pass


@dataclass
class SmokeRun:
    stack: str
    instance_type: str = "ml.g4dn.xlarge"
    epochs: int = 2
    timeout: float = 3600
    say: Callable[[str], None] = print

    def __post_init__(self):
        self.outputs = stack_outputs(self.stack)
        self.bucket = self.outputs["DataBucketName"]
        self.state = StateStore(self.outputs["StateTableName"])
        self.s3 = boto3.client("s3")
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        self.dataset = self.slide = f"smoke-{stamp}"
        self.whole_slide = f"smoke-{stamp}-wsi"
        self.started = time.monotonic()

    # ------------------------------------------------------------------ steps
    def run(self) -> dict:
        settings_key = f"{keys.INCOMING}datasets/{self.dataset}/{dropped_files.TRAINING_SETTINGS_FILE}"
        settings = {
            "instance_type": self.instance_type,
            "hyperparameters": {"epochs": self.epochs},
            "experiment": True,  # its model never becomes current, whatever its AUC
        }
        self.s3.put_object(Bucket=self.bucket, Key=settings_key, Body=json.dumps(settings).encode())
        self._wait("training settings recorded", lambda: self._file_done(settings_key))
        drop_smoke_data(self.s3, self.bucket, self.dataset, self.slide, self.whole_slide)
        for split in SIZES:
            self._wait(
                f"{split} split converted", lambda split=split: self._owner_ready(self.state.split(self.dataset, split))
            )
        self._wait("slide converted", lambda: self._owner_ready(self.state.slide(self.slide)))
        self._wait("whole-slide image cut", lambda: self._owner_ready(self.state.slide(self.whole_slide)))
        training = self._wait("training job", self._training_done)
        model = self._wait("model evaluated", self._model_evaluated)
        if self.state.current_model() is None:  # else the current model scores them, as it would a lab's
            rescore(self.stack, [self.slide, self.whole_slide], self._smoke_model().model_name, "pcam smoke")
        scored = self._wait("slide scored", lambda: self._slide_scored(self.slide))
        self._wait("whole-slide image scored", lambda: self._slide_scored(self.whole_slide))
        return {
            "dataset": self.dataset,
            "slide": self.slide,
            "whole_slide": self.whole_slide,
            "training_job": training,
            "model": model,
            "scoring": scored,
        }

    def _wait(self, step: str, check: Callable[[], str | None]) -> str:
        """Poll ``check`` until it says the step is done (its detail) or raises SmokeFailed."""
        while True:
            detail = check()
            elapsed = time.monotonic() - self.started
            if detail is not None:
                self.say(f"✓ {step:<28} +{elapsed:7.1f} s  {detail}")
                return detail
            if elapsed > self.timeout:
                raise SmokeFailed(
                    f"{step}: not done after {self.timeout:.0f} s (see `pcam status --stack {self.stack}`)"
                )
            time.sleep(POLL_SECONDS)

    def _file_done(self, key: str) -> str | None:
        versions = [r for r in self.state.query(f"file#{key}") if r.get("status")]
        for record in versions:
            if record["status"] in (FileStatus.QUARANTINED, FileStatus.FAILED):
                raise SmokeFailed(f"{key} was {record['status']}: {record.get('reason', '')}")
            if record["status"] == FileStatus.SETTINGS_RECORDED:
                return "recorded"
        return None

    def _owner_ready(self, owner) -> str | None:
        if owner is None:
            return None
        if owner.status is OwnerStatus.FAILED:
            raise SmokeFailed(f"conversion failed: {owner.failure}")
        return f"{owner.x_count} patches" if owner.ready else None

    def _training_done(self) -> str | None:
        name = (self.state.get(f"dataset#{self.dataset}") or {}).get("latest_job")
        job = self.state.job(name) if name else None
        if job is None:
            return None
        if job.status.unsuccessful:
            raise SmokeFailed(f"training job {name} {job.status}: {job.reason}")
        return f"{name} on {self.instance_type}" if job.status is JobStatus.COMPLETED else None

    def _smoke_model(self):
        models = [m for m in self.state.models() if m.dataset == self.dataset]
        return models[-1] if models else None

    def _model_evaluated(self) -> str | None:
        model = self._smoke_model()
        if model is None:
            return None
        if model.status is ModelStatus.EVALUATION_FAILED:
            raise SmokeFailed(f"evaluation of {model.model_name} failed: {model.failure_reason}")
        if model.status is not ModelStatus.EVALUATED or model.decision is None:
            return None
        if model.decision["promote"]:
            raise SmokeFailed(f"the smoke model {model.model_name} became current: {model.decision['reason']}")
        return f"{model.model_name}: test AUC {model.auc:.3f}, not current ({model.decision['reason']})"

    def _slide_scored(self, slide_id: str) -> str | None:
        slide = self.state.slide(slide_id)
        if slide.scoring_status is ScoringStatus.FAILED:
            raise SmokeFailed(f"scoring failed: {slide.scoring_failure}")
        if slide.scoring_status is ScoringStatus.SCORED:
            extra = " (+ .geojson, overlay .png)" if slide.tile_plan_key else ""
            fraction = f"tumour fraction {slide.tumour_fraction:.1%}"
            return f"predictions/{slide_id}.csv{extra} by {slide.scored_model}, {fraction}"
        return None

    # ------------------------------------------------------------------ costs
    def job_costs(self, parameters: dict[str, str]) -> list[dict]:
        """Each SageMaker job this run started: how long it ran and what that costs at list price."""
        return job_costs(self._jobs(), self.instance_type, parameters)

    def _jobs(self) -> list[JobRecord]:
        """The jobs started for this run's dataset and slide (one scan of the state table, at the end)."""
        items = [r for r in self.state.scan_all() if r["pk"].startswith("job#")]
        slides = {self.slide, self.whole_slide}
        mine = [r for r in items if r.get("dataset") == self.dataset or r.get("slide_id") in slides]
        return [JobRecord.from_item(r, name=r["pk"].removeprefix("job#")) for r in mine]

    # ------------------------------------------------------------------ clean
    def clean(self) -> int:
        """Delete what the smoke dropped and what the pipeline wrote for it; returns objects deleted."""
        prefixes = dropped_and_written(self.dataset, self.slide, self.whole_slide)
        current = self.state.current_model()
        needed = {current.model_name, *current.replaced} if current else set()  # what serves, or a rollback needs
        mine = [m for m in self.state.models() if m.dataset == self.dataset and m.model_name not in needed]
        prefixes += [keys.evaluation_prefix(m.model_name) for m in mine]
        prefixes += [f"{keys.MODELS}{m.training_job}/" for m in mine]
        for slide_id in (self.slide, self.whole_slide):  # a later promotion must not queue a deleted slide
            self.state.forget_waiting_slide(slide_id)
        deleted = 0
        paginator = self.s3.get_paginator("list_objects_v2")
        for prefix in prefixes:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if objects:
                    self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
                    deleted += len(objects)
        return deleted


def dropped_and_written(dataset: str, slide: str, whole_slide: str) -> list[str]:
    """The prefixes of what a smoke run dropped and what the pipeline wrote for it (models apart)."""
    return [
        f"{keys.INCOMING}datasets/{dataset}/",
        f"{keys.INCOMING}slides/{slide}.h5",
        f"{keys.IMAGES}datasets/{dataset}/",
        f"{keys.IMAGES}slides/{slide}/",
        f"{keys.MANIFESTS}{dataset}/",
        f"{keys.MANIFESTS}slides/{slide}/",
        f"{keys.PREDICTIONS}{slide}.",
        f"{keys.SCORES}{slide}/",
        f"{keys.INCOMING}slides/{whole_slide}.tif",
        f"{keys.IMAGES}slides/{whole_slide}/",
        f"{keys.MANIFESTS}slides/{whole_slide}/",
        f"{keys.PREDICTIONS}{whole_slide}.",
        f"{keys.TILING}{whole_slide}/",
    ]


def drop_smoke_data(s3, bucket: str, dataset: str, slide: str, whole_slide: str) -> None:
    """A small dataset, an HDF5 slide and a whole-slide image, under the run's own names."""
    with tempfile.TemporaryDirectory() as folder:
        synth_drop(Path(folder), dataset=dataset, slides=1, slide_grid=(4, 4), seed=int(time.time()), **SIZES)
        for path in sorted(Path(folder).rglob("*.h5")):
            relative = path.relative_to(folder).as_posix()
            if relative.startswith("slides/"):
                relative = f"slides/{slide}.h5"
            s3.upload_file(str(path), bucket, keys.INCOMING + relative)
        picture = Path(folder) / "whole-slide.tif"
        synth_wsi(picture, rows=6, cols=8, seed=int(time.time()))
        s3.upload_file(str(picture), bucket, f"{keys.INCOMING}slides/{whole_slide}.tif")

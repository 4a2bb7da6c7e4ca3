"""Named reads and writes of the model side: SageMaker jobs, datasets' training, models, the current
model and its history. Every transition names the state it leaves."""

from __future__ import annotations

from typing import Any

from pcam_pipeline.core.model_records import CurrentModel, ModelRecord
from pcam_pipeline.core.statuses import TERMINAL_JOB_STATUSES, JobStatus, ModelStatus
from pcam_pipeline.state.access import (
    CURRENT,
    MODELS_PK,
    TableAccess,
    dataset_pk,
    model_sk,
)
from pcam_pipeline.state.conditions import Both, Condition, Equals, Missing, Not, OneOf
from pcam_pipeline.state.leases import Lease, lapsed, lease_fields


class ModelSideRecords(TableAccess):
    # --------------------------------------------------------------- datasets
    def record_training_status(self, dataset: str, status: JobStatus, **fields: Any) -> None:
        """The dataset's latest training: ``latest_job`` when starting (an earlier training's failure reason is
        then forgotten: it is the newer one's status that is shown)."""
        forget = ("failure_reason",) if "latest_job" in fields else ()
        self._set(
            dataset_pk(dataset), CURRENT, {"dataset": dataset, "training_status": status, **fields}, remove=forget
        )

    def record_training_failure(self, dataset: str, job_name: str, status: JobStatus, reason: str) -> bool:
        """The dataset's latest training ended without a model; False (nothing written) if a newer training
        started meanwhile: a superseded training's late failure never hides the newer one."""
        fields = {"training_status": status, "failure_reason": reason}
        return self._set(dataset_pk(dataset), CURRENT, fields, Equals("latest_job", job_name)) is not None

    def record_training_progress(self, dataset: str, job_name: str, status: JobStatus) -> bool:
        """A running status of the dataset's latest training; False (nothing written) once that training has
        ended or a newer one started: a late "InProgress" never hides a failure."""
        condition = Both(Equals("latest_job", job_name), Not(OneOf("training_status", TERMINAL_JOB_STATUSES)))
        return self._set(dataset_pk(dataset), CURRENT, {"training_status": status}, condition) is not None

    def record_training_settings(self, dataset: str, settings: dict[str, Any], key: str, version: str) -> None:
        """A dataset's own training settings (its training.json); the latest upload wins."""
        fields = {"dataset": dataset, "training_settings": settings, "training_settings_from": f"{key}#{version}"}
        self._set(dataset_pk(dataset), CURRENT, fields)

    def claim_training_start(self, dataset: str, day: str, job_name: str, per_day: int) -> bool:
        """One of the dataset's ``per_day`` training starts of ``day`` (UTC), for this job; True again for the
        same job (a retried event), False when the day's starts are all taken.

        Each attempt takes the first slot that is free or already this job's: two copies of one event handled
        at once walk the slots in the same order, so they stop at the same slot and the job holds one."""
        prefix = f"training-start#{day}#"
        claim = {"dataset": dataset, "job": job_name}
        free_or_mine = Missing("job") | Equals("job", job_name)
        return any(
            self._set(dataset_pk(dataset), f"{prefix}{n:03d}", claim, free_or_mine) is not None for n in range(per_day)
        )

    def training_settings(self, dataset: str) -> dict[str, Any]:
        settings: dict[str, Any] = (self.get(dataset_pk(dataset)) or {}).get("training_settings", {})
        return settings

    def record_latest_model(self, dataset: str, model_name: str) -> None:
        self._set(dataset_pk(dataset), CURRENT, {"dataset": dataset, "latest_model": model_name})

    # ----------------------------------------------------------------- models
    def model(self, name: str) -> ModelRecord | None:
        return ModelRecord.from_item(self.get(MODELS_PK, model_sk(name)))

    def models(self) -> list[ModelRecord]:
        items = sorted(self.query(MODELS_PK, "model#"), key=lambda m: m.get("created_at", ""))
        return [ModelRecord.from_item(item) for item in items]

    def create_model(self, model: ModelRecord) -> bool:
        return self._put_new(MODELS_PK, model_sk(model.model_name), model.to_item())

    def mark_model_awaiting_test_split(self, name: str) -> None:
        fields = {"status": ModelStatus.AWAITING_TEST_SPLIT}
        self._set(MODELS_PK, model_sk(name), fields, Equals("status", ModelStatus.CREATED))

    def mark_model_evaluating(
        self, name: str, evaluation_prefix: str, test_transform_job: str, test_split: str, replacing: str | None = None
    ) -> bool:
        """Only from created or awaiting a test split, or evaluating with ``test_transform_job`` (a retry) or with
        ``replacing`` (a transform that never started): a repeated event never undoes a later state. False if
        nothing was written."""
        fields = {
            "status": ModelStatus.EVALUATING,
            "evaluation_prefix": evaluation_prefix,
            "test_transform_job": test_transform_job,
            "test_split": test_split,
        }
        waiting = OneOf("status", (ModelStatus.CREATED, ModelStatus.AWAITING_TEST_SPLIT))
        jobs = (test_transform_job,) if replacing is None else (test_transform_job, replacing)
        this_evaluation = Equals("status", ModelStatus.EVALUATING) & OneOf("test_transform_job", jobs)
        return self._set(MODELS_PK, model_sk(name), fields, waiting | this_evaluation) is not None

    def record_model_evaluated(
        self, name: str, metrics: dict[str, Any], evaluated_at: str | None, **fitted: Any
    ) -> None:
        """``fitted``: the calibration map and operating threshold scoring applies."""
        fields = {"status": ModelStatus.EVALUATED, "metrics": metrics, "evaluated_at": evaluated_at, **fitted}
        self._set(MODELS_PK, model_sk(name), fields)

    def record_model_evaluation_failed(self, name: str, reason: str) -> None:
        fields = {"status": ModelStatus.EVALUATION_FAILED, "failure_reason": reason}
        self._set(MODELS_PK, model_sk(name), fields)

    def claim_evaluation_announcement(self, name: str, claimer: str) -> bool:
        """Let one delivery announce the model's evaluation; the same delivery may claim again (a retry)."""
        condition = Missing("evaluation_announced_by") | Equals("evaluation_announced_by", claimer)
        return self._set(MODELS_PK, model_sk(name), {"evaluation_announced_by": claimer}, condition) is not None

    def record_promotion_decision(self, name: str, promote: bool, reason: str) -> None:
        self._set(MODELS_PK, model_sk(name), {"decision": {"promote": promote, "reason": reason}})

    # ---------------------------------------------------------- current model
    def current_model(self) -> CurrentModel | None:
        return CurrentModel.from_item(self.get(MODELS_PK, CURRENT))

    def replace_current_model(self, current: CurrentModel, expected: str | None) -> bool:
        """Make ``current`` the current model if ``expected`` (None: no model) still is; False if not."""
        condition = Missing("model_name") if expected is None else Equals("model_name", expected)
        replaced = self._set(MODELS_PK, CURRENT, current.all_fields(), condition, remove=lease_fields("announcing"))
        return replaced is not None

    def claim_current_model_announcement(self, current: CurrentModel) -> Lease | None:
        """Let one attempt at a time announce this change (model and time; state/leases.py); None if it is
        announced, replaced, or another attempt is announcing it."""
        lease = Lease.for_this_invocation()
        unannounced = Not(Equals("announced", True)) & lapsed("announcing")
        claimed = self._set(MODELS_PK, CURRENT, lease.fields("announcing"), _this_change(current) & unannounced)
        return lease if claimed is not None else None

    def release_current_model_announcement(self, lease: Lease) -> None:
        self._set(MODELS_PK, CURRENT, {}, lease.held("announcing"), remove=lease_fields("announcing"))

    def record_promotion_history(self, current: CurrentModel, **fields: Any) -> None:
        """One history entry per change of the current model: written again by a retry, it stays one."""
        key = f"history#{current.promoted_at}#{current.model_name}"
        self._put_new(MODELS_PK, key, {"model_name": current.model_name, **fields})

    def mark_current_model_announced(self, current: CurrentModel) -> None:
        """Only this change (model and time): a later change must still be announced."""
        self._set(MODELS_PK, CURRENT, {"announced": True}, _this_change(current), remove=lease_fields("announcing"))

    def promotion_history(self) -> list[dict[str, Any]]:
        return self.query(MODELS_PK, "history#")


def _this_change(current: CurrentModel) -> Condition:
    return Equals("model_name", current.model_name) & Equals("promoted_at", current.promoted_at)

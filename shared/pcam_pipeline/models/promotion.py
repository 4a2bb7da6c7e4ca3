"""Which model scores slides: the automatic promotion gate, and promotion or rollback by an operator.

The current model is one record; every change to it is a conditional write on the model it replaces,
so two evaluations finishing at once cannot both win, and every change is kept in a history record.
"""

from __future__ import annotations

from typing import Any

from pcam_pipeline.aws import events
from pcam_pipeline.aws.observability import logger
from pcam_pipeline.core import ports
from pcam_pipeline.core.errors import PipelineError, RetryableError
from pcam_pipeline.core.model_records import CurrentModel, ModelRecord
from pcam_pipeline.core.records import present
from pcam_pipeline.core.statuses import SERVABLE_MODEL_STATUSES
from pcam_pipeline.models.evaluation_report import EXPERIMENT, PromotionDecision, promotion_decision
from pcam_pipeline.state import now_iso
from pcam_pipeline.state.leases import given_back_on_failure
from pcam_pipeline.state.views import PromotionState

PIPELINE = "pipeline (automatic promotion gate)"
_CHANGE_ATTEMPTS = 5
_REPLACED_KEPT = 20


class PromotionError(PipelineError):
    """An operator's promote or rollback cannot be done; the message says why."""


def metric_summary(evaluation: dict[str, Any]) -> dict[str, Any]:
    """What the model's record, each slide's summary and "Model Evaluated" keep of an evaluation: the test
    figures at the operating threshold, and how well calibrated the model is."""
    keep = ("auc", "accuracy", "recall", "precision", "f1", "count", "tumour_count", "threshold")
    summary = {key: evaluation[key] for key in keep if key in evaluation}
    point = evaluation.get("operating_point", {})
    for name in ("sensitivity", "sensitivity_ci95", "specificity", "specificity_ci95"):
        if f"test_{name}" in point:
            summary[name] = point[f"test_{name}"]
    for name in ("target_sensitivity", "threshold_source", "validation_sensitivity"):
        if name in point:
            summary[name] = point[name]
    calibration = evaluation.get("calibration", {})
    if calibration:
        summary["calibration"] = calibration.get("method", "none")
        for name in ("ece_raw", "ece_calibrated", "brier_raw", "brier_calibrated"):
            summary[name] = calibration.get("test", {}).get(name)
        summary["ece"], summary["brier"] = summary["ece_calibrated"], summary["brier_calibrated"]
    return summary


class PromotedModels:
    """The pipeline's own record of trained models and which one is current (not SageMaker's Model Registry)."""

    def __init__(self, state: PromotionState, publisher: ports.EventPublisher):
        self._state, self._events = state, publisher

    def models(self) -> list[ModelRecord]:
        return self._state.models()

    def model(self, name: str) -> ModelRecord | None:
        return self._state.model(name)

    def current(self) -> CurrentModel | None:
        return self._state.current_model()

    def history(self) -> list[dict[str, Any]]:
        return self._state.promotion_history()

    # -------------------------------------------------------------- automatic
    def apply_gate(self, model_name: str, minimum_auc: float, minimum_sensitivity: float = 0.0) -> PromotionDecision:
        """Promote an evaluated model if it meets the minimum AUC and test sensitivity and is not worse than the
        current model."""
        for _ in range(_CHANGE_ATTEMPTS):
            model = self._require(model_name)
            current = self.current()
            if model.decision is not None:
                if current and current.model_name == model_name:
                    self._finish_announcing(current)  # a copy recorded the decision while this one announced
                return PromotionDecision(**model.decision)
            if current and current.model_name == model_name:
                self._finish_announcing(current)
                # Made current by this gate (a retry of a decision whose record failed), or by an operator.
                by_the_gate = current.promoted_by == PIPELINE and current.action == "promoted"
                decision = PromotionDecision(True, current.reason if by_the_gate else "already the current model")
            else:
                decision = promotion_decision(model, minimum_auc, current, minimum_sensitivity)
                if decision.promote and not self._make_current(model, current, PIPELINE, decision.reason, "promoted"):
                    continue  # the current model changed meanwhile: decide again against the new one
            self._state.record_promotion_decision(model_name, decision.promote, decision.reason)
            logger.info("promotion decision", extra={"model_name": model_name, "promote": decision.promote})
            return decision
        raise RetryableError(f"the current model kept changing while deciding on {model_name}; retrying")

    # ----------------------------------------------------------------- manual
    def promote(self, model_name: str, by: str, reason: str = "") -> CurrentModel:
        model = self._require(model_name)
        if model.status not in SERVABLE_MODEL_STATUSES:
            raise PromotionError(f"model {model_name} cannot score slides (status: {model.status})")
        if model.experiment:
            raise PromotionError(f"model {model_name} is an experiment (training.json, pcam smoke): {EXPERIMENT}")
        current = self.current()
        if current and current.model_name == model_name:
            if not current.announced:  # the operator repeats a promote whose announcement failed
                return announced(self._finish_announcing(current))
            raise PromotionError(f"{model_name} is already the current model")
        if not self._make_current(model, current, by, reason or "promoted by hand", "promoted by hand"):
            raise PromotionError("the current model changed while promoting; look again and retry")
        return present(self.current(), "current model")

    def rollback(self, by: str, reason: str = "") -> CurrentModel:
        current = self.current()
        if current and not current.announced:  # a repeated rollback whose announcement failed: finish it
            return announced(self._finish_announcing(current))
        if not current or not current.replaced:
            raise PromotionError("there is no earlier model to roll back to")
        *older, previous = current.replaced
        model = self._require(previous)
        reason = reason or f"rolled back from {current.model_name}"
        if not self._make_current(model, current, by, reason, "rolled back", replaced=older):
            raise PromotionError("the current model changed while rolling back; look again and retry")
        return present(self.current(), "current model")

    # ---------------------------------------------------------------- helpers
    def _require(self, model_name: str) -> ModelRecord:
        model = self.model(model_name)
        if model is None:
            raise PromotionError(f"there is no model named {model_name!r} (see `pcam models`)")
        return model

    def _make_current(
        self,
        model: ModelRecord,
        current: CurrentModel | None,
        by: str,
        reason: str,
        action: str,
        replaced: list[Any] | None = None,
    ) -> bool:
        previous = current.model_name if current else None
        if replaced is None:
            replaced = [*(current.replaced if current else []), *([previous] if previous else [])]
        successor = CurrentModel(
            model_name=model.model_name,
            promoted_at=now_iso("microseconds"),  # orders the history of changes made within a millisecond
            promoted_by=by,
            reason=reason,
            dataset=model.dataset,
            training_job=model.training_job,
            model_data_uri=model.model_data_uri,
            metrics=model.metrics,
            evaluation_prefix=model.evaluation_prefix,
            test_split=model.test_split,
            replaced=replaced[-_REPLACED_KEPT:],
            action=action,
            previous_model=previous,
            announced=False,
        )
        if not self._state.replace_current_model(successor, expected=previous):
            return False
        self._finish_announcing(successor)
        return True

    def _finish_announcing(self, current: CurrentModel) -> CurrentModel:
        """History entry, then Model Promoted, then the mark; a retry after a failure repeats what is missing."""
        if current.announced:
            return current
        lease = self._state.claim_current_model_announcement(current)
        if lease is None:  # announced or replaced since it was read, or a copy of this event is announcing it
            return present(self.current(), "current model")
        change = {"previous_model": current.previous_model, "action": current.action, "by": current.promoted_by,
                  "reason": current.reason}  # fmt: skip
        with given_back_on_failure(lambda: self._state.release_current_model_announcement(lease)):
            self._state.record_promotion_history(current, **change)
            self._events.publish(
                events.MODEL_PROMOTED,
                {"model_name": current.model_name, **change, "metrics": current.metrics, "dataset": current.dataset},
            )
            self._state.mark_current_model_announced(current)
        logger.info(
            "current model changed", extra={"model_name": current.model_name, "previous": change["previous_model"]}
        )
        return present(self.current(), "current model")


def announced(current: CurrentModel) -> CurrentModel:
    """``current``, once "Model Promoted" is published; another attempt still announcing it is said."""
    if not current.announced:
        raise PromotionError(
            f"another attempt is announcing the change to {current.model_name}: run the command again in 15 minutes"
        )
    return current

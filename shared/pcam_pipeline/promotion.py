"""Which model scores slides: the automatic promotion gate, and promotion or rollback by an operator.

The current model is one record; every change to it is a conditional write on the model it replaces,
so two evaluations finishing at once cannot both win, and every change is kept in a history record.
"""

from __future__ import annotations

from boto3.dynamodb.conditions import Attr

from pcam_pipeline import events
from pcam_pipeline.errors import PipelineError
from pcam_pipeline.evaluation import PromotionDecision, promotion_decision
from pcam_pipeline.observability import logger
from pcam_pipeline.state import CURRENT, MODELS_PK, StateStore, model_sk, now_iso

PIPELINE = "pipeline (automatic promotion gate)"
# Statuses of a model that has a SageMaker Model behind it and may score slides.
SERVABLE = {"evaluating", "evaluated", "awaiting test split", "evaluation failed"}
_CHANGE_ATTEMPTS = 5


class PromotionError(PipelineError):
    """An operator's promote or rollback cannot be done; the message says why."""


def metric_summary(evaluation: dict) -> dict:
    keep = ("auc", "accuracy", "recall", "precision", "f1", "count", "tumour_count", "threshold")
    return {key: evaluation[key] for key in keep if key in evaluation}


class ModelRegistry:
    def __init__(self, state: StateStore, publisher: events.EventPublisher):
        self._state, self._events = state, publisher

    def models(self) -> list[dict]:
        return sorted(self._state.query(MODELS_PK, "model#"), key=lambda m: m.get("created_at", ""))

    def model(self, name: str) -> dict | None:
        return self._state.get(MODELS_PK, model_sk(name))

    def current(self) -> dict | None:
        return self._state.get(MODELS_PK, CURRENT)

    def history(self) -> list[dict]:
        return self._state.query(MODELS_PK, "history#")

    # -------------------------------------------------------------- automatic
    def apply_gate(self, model_name: str, minimum_auc: float) -> PromotionDecision:
        """Promote an evaluated model if it meets the minimum AUC and is not worse than the current model."""
        for _ in range(_CHANGE_ATTEMPTS):
            model = self._require(model_name)
            if "decision" in model:
                return PromotionDecision(**model["decision"])
            current = self.current()
            candidate_auc = model.get("metrics", {}).get("auc")
            if current and current["model_name"] == model_name:
                decision = PromotionDecision(True, "already the current model")
            else:
                current_auc = (current or {}).get("metrics", {}).get("auc")
                decision = promotion_decision(candidate_auc, minimum_auc, current_auc)
                if decision.promote and not self._make_current(model, current, PIPELINE, decision.reason, "promoted"):
                    continue  # the current model changed meanwhile: decide again against the new one
            self._state.update(
                MODELS_PK,
                model_sk(model_name),
                {"decision": {"promote": decision.promote, "reason": decision.reason}},
            )
            logger.info("promotion decision", extra={"model_name": model_name, "promote": decision.promote})
            return decision
        raise PipelineError(f"the current model kept changing while deciding on {model_name}; retrying")

    # ----------------------------------------------------------------- manual
    def promote(self, model_name: str, by: str, reason: str = "") -> dict:
        model = self._require(model_name)
        if model.get("status") not in SERVABLE:
            raise PromotionError(f"model {model_name} cannot score slides (status: {model.get('status')})")
        current = self.current()
        if current and current["model_name"] == model_name:
            raise PromotionError(f"{model_name} is already the current model")
        if not self._make_current(model, current, by, reason or "promoted by hand", "promoted by hand"):
            raise PromotionError("the current model changed while promoting; look again and retry")
        return self.current()

    def rollback(self, by: str, reason: str = "") -> dict:
        current = self.current()
        if not current or not current.get("replaced"):
            raise PromotionError("there is no earlier model to roll back to")
        *older, previous = current["replaced"]
        model = self._require(previous)
        if not self._make_current(
            model, current, by, reason or f"rolled back from {current['model_name']}", "rolled back", replaced=older
        ):
            raise PromotionError("the current model changed while rolling back; look again and retry")
        return self.current()

    # ---------------------------------------------------------------- helpers
    def _require(self, model_name: str) -> dict:
        model = self.model(model_name)
        if model is None:
            raise PromotionError(f"there is no model named {model_name!r} (see `pcam models`)")
        return model

    def _make_current(
        self, model: dict, current: dict | None, by: str, reason: str, action: str, replaced: list | None = None
    ) -> bool:
        if replaced is None:
            replaced = [*(current or {}).get("replaced", []), *([current["model_name"]] if current else [])]
        expected = Attr("model_name").not_exists() if current is None else Attr("model_name").eq(current["model_name"])
        when = now_iso()
        fields = {
            "model_name": model["model_name"],
            "dataset": model.get("dataset"),
            "training_job": model.get("training_job"),
            "model_data_uri": model.get("model_data_uri"),
            "metrics": model.get("metrics", {}),
            "evaluation_prefix": model.get("evaluation_prefix"),
            "promoted_at": when,
            "promoted_by": by,
            "reason": reason,
            "replaced": replaced[-20:],
        }
        if not self._state.update(MODELS_PK, CURRENT, fields, condition=expected):
            return False
        previous = current["model_name"] if current else None
        self._state.put_new(
            MODELS_PK,
            f"history#{when}#{model['model_name']}",
            {
                "model_name": model["model_name"],
                "previous_model": previous,
                "action": action,
                "by": by,
                "reason": reason,
            },
        )
        self._events.publish(
            events.MODEL_PROMOTED,
            {
                "model_name": model["model_name"],
                "previous_model": previous,
                "action": action,
                "by": by,
                "reason": reason,
                "metrics": fields["metrics"],
                "dataset": model.get("dataset"),
            },
        )
        logger.info("current model changed", extra={"model_name": model["model_name"], "previous": previous})
        return True

"""The promotion gate and an operator's promote/rollback (in-memory state table and bus)."""

import pytest

from pcam_pipeline.promotion import PIPELINE, ModelRegistry, PromotionError
from pcam_pipeline.records import ModelRecord
from tests.fakes import RecordingPublisher, in_memory_state

MINIMUM_AUC = 0.90


@pytest.fixture
def registry():
    publisher = RecordingPublisher()
    registry = ModelRegistry(in_memory_state(), publisher)
    registry.announced = lambda: publisher.of_type("Model Promoted")
    return registry


def add_model(registry, name, auc, status="evaluated"):
    metrics = {} if auc is None else {"auc": auc, "accuracy": 0.9}
    model = ModelRecord(name, "pcam", name, f"s3://data/models/{name}/model.tar.gz", status, metrics=metrics)
    registry._state.create_model(model)


def test_the_first_model_meeting_the_minimum_becomes_current(registry):
    add_model(registry, "m1", 0.93)
    decision = registry.apply_gate("m1", MINIMUM_AUC)
    assert decision.promote and "first model" in decision.reason
    current = registry.current()
    assert current.model_name == "m1" and current.promoted_by == PIPELINE
    assert current.metrics["auc"] == pytest.approx(0.93)
    assert registry.announced()[0]["model_name"] == "m1"


def test_a_better_model_replaces_the_current_one_and_a_worse_one_does_not(registry):
    for name, auc in (("m1", 0.93), ("better", 0.95), ("worse", 0.94)):
        add_model(registry, name, auc)
        registry.apply_gate(name, MINIMUM_AUC)
    assert registry.current().model_name == "better"
    assert registry.current().replaced == ["m1"]
    assert "worse than the current model's 0.9500" in registry.model("worse").decision["reason"]


def test_a_model_below_the_minimum_or_without_an_auc_is_not_promoted(registry):
    add_model(registry, "weak", 0.85)
    add_model(registry, "unevaluated", None, status="awaiting test split")
    assert "below the required" in registry.apply_gate("weak", MINIMUM_AUC).reason
    assert "promote it by hand" in registry.apply_gate("unevaluated", MINIMUM_AUC).reason
    assert registry.current() is None


def test_the_gate_decides_once(registry):
    add_model(registry, "m1", 0.93)
    first = registry.apply_gate("m1", MINIMUM_AUC)
    again = registry.apply_gate("m1", MINIMUM_AUC)
    assert first == again
    assert len(registry.history()) == 1


def test_an_operator_promotes_by_hand_and_rolls_back_step_by_step(registry):
    for name, auc in (("m1", 0.93), ("m2", 0.95)):
        add_model(registry, name, auc)
        registry.apply_gate(name, MINIMUM_AUC)
    add_model(registry, "manual", None, status="awaiting test split")
    current = registry.promote("manual", by="arn:aws:iam::1:user/ops", reason="validated on our own slides")
    assert (current.model_name, current.promoted_by) == ("manual", "arn:aws:iam::1:user/ops")
    assert current.replaced == ["m1", "m2"]
    assert registry.rollback(by="ops").model_name == "m2"
    assert registry.rollback(by="ops").model_name == "m1"
    with pytest.raises(PromotionError, match="no earlier model"):
        registry.rollback(by="ops")
    actions = [h["action"] for h in registry.history()]
    assert actions == ["promoted", "promoted", "promoted by hand", "rolled back", "rolled back"]


@pytest.mark.parametrize(
    ("name", "status", "problem"),
    [
        ("ghost", None, "no model named 'ghost'"),
        ("broken", "evaluation failed", None),
        ("created-only", "created", "cannot score slides"),
    ],
)
def test_promote_refuses_what_cannot_score_slides(registry, name, status, problem):
    if status:
        add_model(registry, name, None, status=status)
    if problem is None:  # a failed evaluation may still be promoted by an operator who checked it
        assert registry.promote(name, by="ops").model_name == name
        return
    with pytest.raises(PromotionError, match=problem):
        registry.promote(name, by="ops")


def test_promoting_the_current_model_again_is_refused(registry):
    add_model(registry, "m1", 0.93)
    registry.apply_gate("m1", MINIMUM_AUC)
    with pytest.raises(PromotionError, match="already the current model"):
        registry.promote("m1", by="ops")

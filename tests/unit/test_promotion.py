"""The promotion gate and an operator's promote/rollback (in-memory state table and bus)."""

from unittest.mock import Mock

import pytest

from pcam_pipeline.core.errors import RetryableError
from pcam_pipeline.core.model_records import ModelRecord
from pcam_pipeline.models.promotion import PIPELINE, PromotedModels, PromotionError
from tests.fakes import RecordingPublisher, in_memory_state

MINIMUM_AUC = 0.90


def registry_on(publisher: RecordingPublisher) -> PromotedModels:
    registry = PromotedModels(in_memory_state(), publisher)
    registry.announced = lambda: publisher.of_type("Model Promoted")
    return registry


@pytest.fixture
def registry():
    return registry_on(RecordingPublisher())


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


class BusDownOnce(RecordingPublisher):
    """The bus refuses the first Model Promoted: the change is written, its announcement is not."""

    def __init__(self):
        super().__init__()
        self.refused = False

    def publish(self, detail_type: str, detail: dict) -> None:
        if detail_type == "Model Promoted" and not self.refused:
            self.refused = True
            raise RetryableError("the bus is unavailable")
        super().publish(detail_type, detail)


@pytest.fixture
def flaky_registry():
    return registry_on(BusDownOnce())


def test_a_promotion_whose_announcement_failed_is_announced_by_the_retry(flaky_registry):
    """Waiting slides are scored on Model Promoted: losing it would leave them waiting for ever."""
    add_model(flaky_registry, "m1", 0.93)
    with pytest.raises(RetryableError):
        flaky_registry.apply_gate("m1", MINIMUM_AUC)
    assert flaky_registry.current().model_name == "m1" and flaky_registry.announced() == []
    assert flaky_registry.apply_gate("m1", MINIMUM_AUC).promote  # the event's redelivery
    (announced,) = flaky_registry.announced()
    assert (announced["model_name"], announced["action"], announced["by"]) == ("m1", "promoted", PIPELINE)
    assert "first model" in announced["reason"]
    flaky_registry.apply_gate("m1", MINIMUM_AUC)
    assert len(flaky_registry.announced()) == 1 and len(flaky_registry.history()) == 1


def test_an_operator_repeating_a_promote_whose_announcement_failed_finishes_it(flaky_registry):
    add_model(flaky_registry, "m1", 0.93)
    add_model(flaky_registry, "m2", 0.91)
    with pytest.raises(RetryableError):
        flaky_registry.promote("m2", by="ops", reason="better on our slides")
    assert flaky_registry.promote("m2", by="ops", reason="better on our slides").model_name == "m2"
    (announced,) = flaky_registry.announced()
    assert (announced["model_name"], announced["previous_model"], announced["reason"]) == (
        "m2",
        None,
        "better on our slides",
    )
    with pytest.raises(PromotionError, match="m2 is already the current model"):
        flaky_registry.promote("m2", by="ops")


def test_a_promote_repeated_while_another_attempt_announces_the_change_says_so(flaky_registry):
    add_model(flaky_registry, "m2", 0.91)
    with pytest.raises(RetryableError):
        flaky_registry.promote("m2", by="ops")
    holder = flaky_registry._state.claim_current_model_announcement(flaky_registry.current())  # e.g. the pipeline
    with pytest.raises(PromotionError, match="another attempt is announcing the change to m2: run the command again"):
        flaky_registry.promote("m2", by="ops")
    assert flaky_registry.announced() == []
    flaky_registry._state.release_current_model_announcement(holder)  # that attempt failed in turn
    assert flaky_registry.promote("m2", by="ops").announced and len(flaky_registry.announced()) == 1


def test_a_rollback_whose_announcement_failed_is_finished_not_repeated(flaky_registry):
    flaky_registry._events.refused = True  # the bus works for the two promotions
    for name in ("m1", "m2"):
        add_model(flaky_registry, name, 0.93)
        flaky_registry.promote(name, by="ops")
    flaky_registry._events.refused = False  # and fails once, on the rollback
    with pytest.raises(RetryableError):
        flaky_registry.rollback(by="ops")
    assert flaky_registry.rollback(by="ops").model_name == "m1"  # finished, not rolled back further
    assert [e["action"] for e in flaky_registry.announced()] == ["promoted by hand", "promoted by hand", "rolled back"]
    assert len(flaky_registry.history()) == 3


def test_changes_by_hand_say_why_by_default_and_errors_say_what_to_do(registry):
    for name in ("m1", "m2"):
        add_model(registry, name, 0.93)
    assert registry.promote("m1", by="ops").reason == "promoted by hand"
    assert registry.promote("m2", by="ops").reason == "promoted by hand"
    assert registry.rollback(by="ops").reason == "rolled back from m2"
    with pytest.raises(PromotionError) as caught:
        registry.promote("m1", by="ops")
    assert str(caught.value) == "m1 is already the current model"
    with pytest.raises(PromotionError) as caught:
        registry.promote("m9", by="ops")
    assert str(caught.value) == "there is no model named 'm9' (see `pcam models`)"
    with pytest.raises(PromotionError) as caught:
        registry.rollback(by="ops")
    assert str(caught.value) == "there is no earlier model to roll back to"


def test_a_change_by_hand_that_loses_a_race_is_refused_and_announces_nothing(registry, monkeypatch):
    for name in ("m1", "m2"):
        add_model(registry, name, 0.93)
    registry.promote("m1", by="ops")
    registry.promote("m2", by="ops")
    monkeypatch.setattr(registry._state, "replace_current_model", lambda current, expected: False)
    with pytest.raises(PromotionError) as caught:
        registry.promote("m1", by="ops")
    assert str(caught.value) == "the current model changed while promoting; look again and retry"
    with pytest.raises(PromotionError) as caught:
        registry.rollback(by="ops")
    assert str(caught.value) == "the current model changed while rolling back; look again and retry"
    assert len(registry.announced()) == 2 and registry.current().model_name == "m2"


def test_the_current_model_keeps_the_figures_operators_compare():
    from pcam_pipeline.models.promotion import metric_summary

    evaluation = {"auc": 0.9, "accuracy": 0.8, "recall": 0.7, "precision": 0.6, "f1": 0.65, "count": 10,
                  "tumour_count": 4, "threshold": 0.5, "roc": {"thresholds": []}, "confusion_matrix": {}}  # fmt: skip
    summary = metric_summary(evaluation)
    assert summary == {key: evaluation[key] for key in list(evaluation)[:8]}


def test_the_gate_names_itself_keeps_twenty_replaced_models_and_says_when_a_model_is_already_current(
    registry, monkeypatch
):
    for index in range(22):
        add_model(registry, f"m{index:02d}", 0.90 + index / 1000)
        registry.apply_gate(f"m{index:02d}", MINIMUM_AUC)
    current = registry.current()
    assert current.promoted_by == "pipeline (automatic promotion gate)"  # what operators read in the history
    assert current.replaced == [f"m{index:02d}" for index in range(1, 21)]  # the latest 20, oldest first
    announced = registry.announced()[-1]
    assert (announced["metrics"], announced["dataset"]) == ({"auc": 0.921, "accuracy": 0.9}, "pcam")

    add_model(registry, "m22", 0.99)
    recording = registry._state.record_promotion_decision
    monkeypatch.setattr(registry._state, "record_promotion_decision", Mock(side_effect=RetryableError("down")))
    with pytest.raises(RetryableError):  # promoted, but the decision could not be recorded
        registry.apply_gate("m22", MINIMUM_AUC)
    monkeypatch.setattr(registry._state, "record_promotion_decision", recording)
    # The redelivery records (and announces) the gate's own reason, not what the failed attempt left behind.
    assert registry.apply_gate("m22", MINIMUM_AUC).reason == "AUC 0.9900 is at least the current model's 0.9210"
    add_model(registry, "m23", 0.995)
    registry.promote("m23", by="operator")  # by hand, before the gate saw it
    assert registry.apply_gate("m23", MINIMUM_AUC).reason == "already the current model"


def test_the_gate_decides_again_when_the_current_model_changed_meanwhile_and_gives_up_after_five(registry, monkeypatch):
    add_model(registry, "m1", 0.95)
    real, refusals = registry._state.replace_current_model, []

    def changed_meanwhile(current, expected):
        if len(refusals) < 2:
            refusals.append(current.model_name)
            return False
        return real(current, expected)

    monkeypatch.setattr(registry._state, "replace_current_model", changed_meanwhile)
    assert registry.apply_gate("m1", MINIMUM_AUC).promote and refusals == ["m1", "m1"]
    add_model(registry, "m2", 0.99)
    monkeypatch.setattr(registry._state, "replace_current_model", lambda current, expected: False)
    with pytest.raises(RetryableError) as caught:
        registry.apply_gate("m2", MINIMUM_AUC)
    assert str(caught.value) == "the current model kept changing while deciding on m2; retrying"


def test_promoting_a_model_that_cannot_score_says_its_status(registry):
    add_model(registry, "young", None, status="created")
    with pytest.raises(PromotionError) as caught:
        registry.promote("young", by="ops")
    assert str(caught.value) == "model young cannot score slides (status: created)"


def test_an_experiments_model_is_never_made_current_neither_by_the_gate_nor_by_hand(registry):
    add_model(registry, "m1", 0.93)
    registry.apply_gate("m1", MINIMUM_AUC)
    smoke = ModelRecord("smoke", "smoke-1", "smoke", "s3://data/models/smoke/model.tar.gz", "evaluated",
                        metrics={"auc": 1.0}, experiment=True)  # fmt: skip
    registry._state.create_model(smoke)
    assert not registry.apply_gate("smoke", 0.5).promote
    with pytest.raises(PromotionError, match="is an experiment"):
        registry.promote("smoke", by="operator")
    assert registry.current().model_name == "m1"


def test_a_model_tested_on_another_test_split_is_not_compared_with_the_current_one(registry):
    for name, split in (("lab-a", "a/test u1"), ("lab-b", "b/test u7")):
        registry._state.create_model(
            ModelRecord(
                name, name, name, f"s3://data/models/{name}", "evaluated", metrics={"auc": 0.95}, test_split=split
            )
        )
    registry.apply_gate("lab-a", MINIMUM_AUC)
    decision = registry.apply_gate("lab-b", MINIMUM_AUC)
    assert not decision.promote and "do not compare" in decision.reason
    assert registry.current().model_name == "lab-a" and registry.current().test_split == "a/test u1"

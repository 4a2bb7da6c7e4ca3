import io

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from pcam_pipeline.evaluate_model import evaluate, roc_csv
from pcam_pipeline.evaluation import promotion_decision, roc_png


def test_metrics_match_a_hand_computed_case():
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    scores = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.4, 0.7])
    result = evaluate(labels, scores, threshold=0.5)
    # predicted 1 for 0.9, 0.8, 0.6, 0.7 → TP 3 (0.9, 0.8, 0.7), FP 1 (0.6), FN 1 (0.3), TN 3
    assert result["confusion_matrix"] == {
        "true_negative": 3,
        "false_positive": 1,
        "false_negative": 1,
        "true_positive": 3,
    }
    assert result["recall"] == pytest.approx(3 / 4)
    assert result["precision"] == pytest.approx(3 / 4)
    assert result["f1"] == pytest.approx(3 / 4)
    assert result["accuracy"] == pytest.approx(6 / 8)
    # AUC by hand: of the 16 (tumour, normal) pairs the tumour scores higher in 14
    assert result["auc"] == pytest.approx(14 / 16)
    assert (result["count"], result["tumour_count"]) == (8, 4)


def test_auc_agrees_with_scikit_learn_on_random_scores():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 500)
    scores = np.clip(labels * 0.3 + rng.random(500) * 0.8, 0, 1)
    assert evaluate(labels, scores)["auc"] == pytest.approx(roc_auc_score(labels, scores))


def test_roc_points_are_written_as_csv_and_a_picture():
    result = evaluate(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]))
    lines = roc_csv(result).splitlines()
    assert lines[0] == "threshold,false_positive_rate,true_positive_rate"
    assert lines[-1].endswith("1.000000,1.000000")
    picture = Image.open(io.BytesIO(roc_png(result, "model-a")))
    assert picture.format == "PNG" and picture.size == (480, 480)


@pytest.mark.parametrize(
    ("candidate", "current", "promote", "reason"),
    [
        (0.95, None, True, "first model"),
        (0.96, 0.95, True, "at least the current"),
        (0.95, 0.95, True, "at least the current"),
        (0.93, 0.95, False, "worse than the current"),
        (0.85, None, False, "below the required"),
        (None, 0.95, False, "no test split"),
    ],
)
def test_promotion_gate(candidate, current, promote, reason):
    decision = promotion_decision(candidate, 0.90, current)
    assert decision.promote is promote and reason in decision.reason

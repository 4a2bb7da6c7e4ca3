"""Test-set evaluation of a model and the promotion gate. Pure (scikit-learn metrics, PIL drawing).

Not yet called by a deployed function: the evaluation function (issue 3) will need scikit-learn in a
layer of its own, to keep every function's bundle under Lambda's 250 MB.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from sklearn import metrics


def evaluate(labels: np.ndarray, tumour_probability: np.ndarray, threshold: float = 0.5) -> dict:
    """Recall, precision, F1, AUC, accuracy, confusion matrix and ROC points of one model on one test set."""
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(tumour_probability, dtype=float)
    predicted = (scores >= threshold).astype(int)
    (tn, fp), (fn, tp) = metrics.confusion_matrix(labels, predicted, labels=[0, 1])
    fpr, tpr, thresholds = metrics.roc_curve(labels, scores)
    return {
        "count": int(labels.size),
        "tumour_count": int(labels.sum()),
        "threshold": threshold,
        "auc": float(metrics.roc_auc_score(labels, scores)),
        "accuracy": float(metrics.accuracy_score(labels, predicted)),
        "recall": float(metrics.recall_score(labels, predicted, zero_division=0)),
        "precision": float(metrics.precision_score(labels, predicted, zero_division=0)),
        "f1": float(metrics.f1_score(labels, predicted, zero_division=0)),
        "confusion_matrix": {
            "true_negative": int(tn),
            "false_positive": int(fp),
            "false_negative": int(fn),
            "true_positive": int(tp),
        },
        "roc": {
            "false_positive_rate": fpr.tolist(),
            "true_positive_rate": tpr.tolist(),
            "thresholds": [float(min(t, 1.0)) for t in thresholds],
        },
    }


def roc_csv(evaluation: dict) -> str:
    roc = evaluation["roc"]
    rows = zip(roc["thresholds"], roc["false_positive_rate"], roc["true_positive_rate"], strict=True)
    return "threshold,false_positive_rate,true_positive_rate\n" + "".join(
        f"{t:.6f},{f:.6f},{p:.6f}\n" for t, f, p in rows
    )


def roc_png(evaluation: dict, title: str, size: int = 480) -> bytes:
    """A readable ROC curve: axes with ticks, the chance diagonal, the curve, and the AUC."""
    margin = 60
    plot = size - 2 * margin
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)

    def point(fpr: float, tpr: float) -> tuple[float, float]:
        return margin + fpr * plot, size - margin - tpr * plot

    draw.rectangle([margin, margin, size - margin, size - margin], outline="black")
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x, y = point(tick, tick)
        draw.line([x, size - margin, x, size - margin + 5], fill="black")
        draw.text((x - 10, size - margin + 8), f"{tick:.2f}", fill="black")
        draw.line([margin - 5, y, margin, y], fill="black")
        draw.text((margin - 40, y - 6), f"{tick:.2f}", fill="black")
    draw.line([point(0, 0), point(1, 1)], fill=(160, 160, 160), width=1)
    roc = evaluation["roc"]
    draw.line(
        [point(f, t) for f, t in zip(roc["false_positive_rate"], roc["true_positive_rate"], strict=True)],
        fill=(180, 30, 90),
        width=3,
    )
    draw.text((margin, 20), f"{title}   AUC = {evaluation['auc']:.3f}", fill="black")
    draw.text((size // 2 - 60, size - 25), "false positive rate", fill="black")
    draw.text((5, margin - 20), "true positive rate", fill="black")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str


def promotion_decision(candidate_auc: float | None, minimum_auc: float, current_auc: float | None) -> PromotionDecision:
    """A model becomes current only if evaluated, at least ``minimum_auc``, and not worse than the current one."""
    if candidate_auc is None:
        return PromotionDecision(False, "not evaluated (the dataset has no test split): promote it by hand")
    if candidate_auc < minimum_auc:
        return PromotionDecision(False, f"AUC {candidate_auc:.4f} is below the required {minimum_auc:.4f}")
    if current_auc is not None and candidate_auc < current_auc:
        return PromotionDecision(False, f"AUC {candidate_auc:.4f} is worse than the current model's {current_auc:.4f}")
    if current_auc is None:
        return PromotionDecision(True, f"first model; AUC {candidate_auc:.4f} meets {minimum_auc:.4f}")
    return PromotionDecision(True, f"AUC {candidate_auc:.4f} is at least the current model's {current_auc:.4f}")

"""What happens after a model's test-set evaluation: its ROC picture and the promotion gate. Pure.

The figures themselves come from ``evaluate_model``, which runs in SageMaker's scikit-learn container.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw

from pcam_pipeline.core.model_records import CurrentModel, ModelRecord


def roc_png(evaluation: dict[str, Any], title: str, size: int = 480) -> bytes:
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
    if roc["false_positive_rate"]:
        draw.line(
            [point(f, t) for f, t in zip(roc["false_positive_rate"], roc["true_positive_rate"], strict=True)],
            fill=(180, 30, 90),
            width=3,
        )
    auc = "n/a" if evaluation.get("auc") is None else f"{evaluation['auc']:.3f}"
    draw.text((margin, 20), f"{title}   AUC = {auc}", fill="black")
    draw.text((size // 2 - 60, size - 25), "false positive rate", fill="black")
    draw.text((5, margin - 20), "true positive rate", fill="black")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str


EXPERIMENT = "its models never score slides"


def promotion_decision(candidate: ModelRecord, minimum_auc: float, current: CurrentModel | None) -> PromotionDecision:
    """A model becomes current only if it is no experiment, was evaluated, has at least ``minimum_auc``, and is
    not worse than the current model on the same test split (AUCs on different test sets do not compare)."""
    candidate_auc = candidate.auc
    current_auc = current.metrics.get("auc") if current else None
    if candidate.experiment:
        return PromotionDecision(False, f"trained as an experiment (training.json, pcam smoke): {EXPERIMENT}")
    if candidate_auc is None:
        return PromotionDecision(
            False, "no test-set AUC (no test split, or one holding a single class): promote it by hand if wanted"
        )
    if candidate_auc < minimum_auc:
        return PromotionDecision(False, f"AUC {candidate_auc:.4f} is below the required {minimum_auc:.4f}")
    if current and current.test_split and current.test_split != candidate.test_split:
        return PromotionDecision(
            False,
            f"evaluated on {candidate.test_split}, the current model on {current.test_split}: AUCs on different "
            "test sets do not compare; promote it by hand after comparing them on one test set",
        )
    if current_auc is not None and candidate_auc < current_auc:
        return PromotionDecision(False, f"AUC {candidate_auc:.4f} is worse than the current model's {current_auc:.4f}")
    if current_auc is None:
        return PromotionDecision(True, f"first model; AUC {candidate_auc:.4f} meets {minimum_auc:.4f}")
    return PromotionDecision(True, f"AUC {candidate_auc:.4f} is at least the current model's {current_auc:.4f}")

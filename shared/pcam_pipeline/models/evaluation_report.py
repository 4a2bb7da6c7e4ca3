"""What happens after a model's test-set evaluation: its ROC picture and the promotion gate. Pure.

The figures themselves come from ``evaluate_model``, which runs in SageMaker's scikit-learn container.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw

from pcam_pipeline.core.model_records import CurrentModel, ModelRecord


class _UnitSquarePlot:
    """A square plot of [0, 1] x [0, 1] with ticks, the diagonal and axis names."""

    def __init__(self, size: int, x_name: str, y_name: str, margin: int = 60):
        self.size, self.margin, self.plot = size, margin, size - 2 * margin
        self.image = Image.new("RGB", (size, size), "white")
        self.draw = ImageDraw.Draw(self.image)
        self.draw.rectangle([margin, margin, size - margin, size - margin], outline="black")
        for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
            x, y = self.point(tick, tick)
            self.draw.line([x, size - margin, x, size - margin + 5], fill="black")
            self.draw.text((x - 10, size - margin + 8), f"{tick:.2f}", fill="black")
            self.draw.line([margin - 5, y, margin, y], fill="black")
            self.draw.text((margin - 40, y - 6), f"{tick:.2f}", fill="black")
        self.draw.line([self.point(0, 0), self.point(1, 1)], fill=(160, 160, 160), width=1)
        self.draw.text((size // 2 - 60, size - 25), x_name, fill="black")
        self.draw.text((5, margin - 20), y_name, fill="black")

    def point(self, x: float, y: float) -> tuple[float, float]:
        return self.margin + x * self.plot, self.size - self.margin - y * self.plot

    def png(self) -> bytes:
        out = io.BytesIO()
        self.image.save(out, format="PNG")
        return out.getvalue()


def roc_png(evaluation: dict[str, Any], title: str, size: int = 480) -> bytes:
    """A readable ROC curve: axes with ticks, the chance diagonal, the curve, and the AUC."""
    plot = _UnitSquarePlot(size, "false positive rate", "true positive rate")
    roc = evaluation["roc"]
    if roc["false_positive_rate"]:
        plot.draw.line(
            [plot.point(f, t) for f, t in zip(roc["false_positive_rate"], roc["true_positive_rate"], strict=True)],
            fill=(180, 30, 90),
            width=3,
        )
    auc = "n/a" if evaluation.get("auc") is None else f"{evaluation['auc']:.3f}"
    plot.draw.text((plot.margin, 20), f"{title}   AUC = {auc}", fill="black")
    return plot.png()


RAW, CALIBRATED = (150, 150, 150), (20, 90, 200)


def reliability_png(evaluation: dict[str, Any], title: str, size: int = 480) -> bytes:
    """The reliability diagram on the test split: observed tumour rate against mean predicted probability per
    bin, raw (grey) and calibrated (blue), each dot sized by its bin's share of tiles; the diagonal is perfect."""
    plot = _UnitSquarePlot(size, "mean predicted probability", "observed tumour rate")
    test = evaluation["calibration"]["test"]
    for name, colour in (("reliability_raw", RAW), ("reliability_calibrated", CALIBRATED)):
        rows = [row for row in test[name] if row["count"]]
        total = sum(row["count"] for row in rows) or 1
        points = [plot.point(row["mean_predicted"], row["observed"]) for row in rows]
        if len(points) > 1:
            plot.draw.line(points, fill=colour, width=2)
        for (x, y), row in zip(points, rows, strict=True):
            radius = 2 + 8 * (row["count"] / total) ** 0.5
            plot.draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    method = evaluation["calibration"].get("method", "none")
    plot.draw.text((plot.margin, 12), f"{title}   calibration: {method}", fill="black")
    plot.draw.text(
        (plot.margin, 30), f"ECE raw {test['ece_raw']:.3f} (grey), calibrated {test['ece_calibrated']:.3f}", fill=RAW
    )
    plot.draw.text((plot.margin + 230, 30), "(blue)", fill=CALIBRATED)
    return plot.png()


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str


EXPERIMENT = "its models never score slides"


def promotion_decision(
    candidate: ModelRecord, minimum_auc: float, current: CurrentModel | None, minimum_sensitivity: float = 0.0
) -> PromotionDecision:
    """A model becomes current only if it is no experiment, was evaluated, has at least ``minimum_auc``, a test
    sensitivity whose lower 95 % bound is at least ``minimum_sensitivity`` at its operating threshold, and is
    not worse than the current model on the same test split (AUCs on different test sets do not compare).
    Each refusal names its rule."""
    candidate_auc = candidate.auc
    current_auc = current.metrics.get("auc") if current else None
    if candidate.experiment:
        return PromotionDecision(False, f"trained as an experiment (training.json, pcam smoke): {EXPERIMENT}")
    if candidate_auc is None:
        return PromotionDecision(
            False, "no test-set AUC (no test split, or one holding a single class): promote it by hand if wanted"
        )
    if candidate_auc < minimum_auc:
        return PromotionDecision(
            False, f"PromotionMinimumAuc: AUC {candidate_auc:.4f} is below the required {minimum_auc:.4f}"
        )
    if minimum_sensitivity > 0:
        bounds = candidate.metrics.get("sensitivity_ci95")
        if not bounds:
            return PromotionDecision(
                False, "PromotionMinimumSensitivity: no test sensitivity at an operating threshold was measured"
            )
        if bounds[0] < minimum_sensitivity:
            threshold = candidate.metrics.get("threshold")
            return PromotionDecision(
                False,
                f"PromotionMinimumSensitivity: the test sensitivity at threshold {threshold:.4f} is "
                f"{candidate.metrics['sensitivity']:.4f}, 95 % interval from {bounds[0]:.4f}, below the required "
                f"{minimum_sensitivity:.4f}",
            )
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

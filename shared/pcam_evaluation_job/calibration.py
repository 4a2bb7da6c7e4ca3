"""Calibration and the operating point of a model, from its validation-split scores; calibration error and
confidence intervals on the test split. Runs in the evaluation job (scikit-learn, SciPy); ``apply_calibration``
needs NumPy only, so the scoring Lambda applies the same map.

- Calibration map: Platt's sigmoid on the score's log-odds (Platt 1999) or isotonic regression (Zadrozny and
  Elkan 2002), whichever has the lower 5-fold cross-validated log loss on the validation split (scikit-learn's
  LogisticRegression, IsotonicRegression, StratifiedKFold and log_loss).
- Operating threshold: the highest calibrated threshold whose validation sensitivity reaches the target.
- Expected calibration error: 15 equal-width bins, weighted by their share of tiles (Guo et al. 2017).
- 95 % intervals of a proportion: Wilson's score interval (SciPy's binomtest(...).proportion_ci).
"""

from __future__ import annotations

import math

import numpy as np

SCORE_FLOOR = 1e-6  # log-odds of a score of exactly 0 or 1 are infinite
CV_FOLDS = 5
ECE_BINS = 15
MAX_ISOTONIC_KNOTS = 256  # the map is kept in the model's record: its size stays small


def _log_odds(scores) -> np.ndarray:
    clipped = np.clip(np.asarray(scores, dtype=float), SCORE_FLOOR, 1 - SCORE_FLOOR)
    return np.log(clipped / (1 - clipped))


def apply_calibration(calibration: dict | None, scores) -> np.ndarray:
    """Calibrated probabilities of raw scores; no map (or ``none``) leaves them as they are."""
    scores = np.asarray(scores, dtype=float)
    fitted = calibration or {}
    method = fitted.get("method", "none")
    if method == "sigmoid":
        return 1 / (1 + np.exp(-(fitted["slope"] * _log_odds(scores) + fitted["intercept"])))
    if method == "isotonic":
        return np.asarray(np.interp(scores, fitted["x"], fitted["y"]))
    if method == "none":
        return scores
    raise ValueError(f"unknown calibration method {method!r}")


def _fit_sigmoid(labels, scores) -> dict:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e6).fit(_log_odds(scores)[:, None], labels)
    return {"method": "sigmoid", "slope": float(model.coef_[0, 0]), "intercept": float(model.intercept_[0])}


def _fit_isotonic(labels, scores) -> dict:
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels)
    x, y = np.asarray(model.X_thresholds_, dtype=float), np.asarray(model.y_thresholds_, dtype=float)
    if x.size > MAX_ISOTONIC_KNOTS:  # keep the ends and evenly spaced knots between: still monotone
        keep = np.unique(np.linspace(0, x.size - 1, MAX_ISOTONIC_KNOTS).round().astype(int))
        x, y = x[keep], y[keep]
    return {"method": "isotonic", "x": x.tolist(), "y": y.tolist()}


FITTERS = {"sigmoid": _fit_sigmoid, "isotonic": _fit_isotonic}


def fit_calibration(labels, scores, folds: int = CV_FOLDS, seed: int = 0) -> dict:
    """The calibration map with the lower cross-validated log loss, refitted on all of the validation split."""
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold

    labels, scores = np.asarray(labels).astype(int), np.asarray(scores, dtype=float)
    smaller_class = int(min(labels.sum(), labels.size - labels.sum()))
    if smaller_class < 2:
        return {"method": "none", "reason": "the validation split needs at least two tiles of each class"}
    splitter = StratifiedKFold(n_splits=min(folds, smaller_class), shuffle=True, random_state=seed)
    losses = {}
    for method, fit in FITTERS.items():
        predicted = np.empty(labels.size)
        for train, held_out in splitter.split(scores[:, None], labels):
            predicted[held_out] = apply_calibration(fit(labels[train], scores[train]), scores[held_out])
        losses[method] = float(log_loss(labels, np.clip(predicted, SCORE_FLOOR, 1 - SCORE_FLOOR), labels=[0, 1]))
    best = min(losses, key=lambda method: (losses[method], method))
    return {**FITTERS[best](labels, scores), "cv_log_loss": losses}


def operating_threshold(labels, probabilities, target_sensitivity: float) -> float:
    """The highest threshold at which at least ``target_sensitivity`` of the tumour tiles are at or above it."""
    labels, probabilities = np.asarray(labels).astype(int), np.asarray(probabilities, dtype=float)
    tumour = np.sort(probabilities[labels == 1])[::-1]
    if tumour.size == 0:
        raise ValueError("no tumour tiles to choose a threshold on")
    needed = max(1, math.ceil(target_sensitivity * tumour.size - 1e-9))
    return float(tumour[needed - 1])


def wilson_interval(successes: int, trials: int) -> list | None:
    """95 % Wilson score interval of a proportion; None without trials."""
    if trials == 0:
        return None
    from scipy.stats import binomtest

    interval = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=0.95, method="wilson")
    return [float(interval.low), float(interval.high)]


def rates_at(labels, probabilities, threshold: float) -> dict:
    """Sensitivity and specificity at ``threshold``, each with its 95 % Wilson interval."""
    labels, probabilities = np.asarray(labels).astype(int), np.asarray(probabilities, dtype=float)
    positive = probabilities >= threshold
    tumour, normal = labels == 1, labels == 0
    found, cleared = int((positive & tumour).sum()), int((~positive & normal).sum())
    return {
        "sensitivity": found / tumour.sum() if tumour.any() else None,
        "sensitivity_ci95": wilson_interval(found, int(tumour.sum())),
        "specificity": cleared / normal.sum() if normal.any() else None,
        "specificity_ci95": wilson_interval(cleared, int(normal.sum())),
    }


def reliability(labels, probabilities, bins: int = ECE_BINS) -> list:
    """Per equal-width bin of predicted probability: its range, tile count, mean prediction and observed rate."""
    labels, probabilities = np.asarray(labels).astype(float), np.asarray(probabilities, dtype=float)
    which = np.minimum((probabilities * bins).astype(int), bins - 1)  # 1.0 falls in the last bin
    table = []
    for index in range(bins):
        inside = which == index
        count = int(inside.sum())
        table.append({
            "low": index / bins,
            "high": (index + 1) / bins,
            "count": count,
            "mean_predicted": float(probabilities[inside].mean()) if count else None,
            "observed": float(labels[inside].mean()) if count else None,
        })  # fmt: skip
    return table


def expected_calibration_error(labels, probabilities, bins: int = ECE_BINS) -> float:
    table = reliability(labels, probabilities, bins)
    total = sum(row["count"] for row in table)
    return float(
        sum(row["count"] / total * abs(row["mean_predicted"] - row["observed"]) for row in table if row["count"])
    )


def calibration_figures(labels, raw, calibrated) -> dict:
    """Brier score, expected calibration error and the reliability table, raw and calibrated, on one split."""
    from sklearn.metrics import brier_score_loss

    labels = np.asarray(labels).astype(int)
    return {
        "brier_raw": float(brier_score_loss(labels, raw)),
        "brier_calibrated": float(brier_score_loss(labels, calibrated)),
        "ece_raw": expected_calibration_error(labels, raw),
        "ece_calibrated": expected_calibration_error(labels, calibrated),
        "reliability_raw": reliability(labels, raw),
        "reliability_calibrated": reliability(labels, calibrated),
    }

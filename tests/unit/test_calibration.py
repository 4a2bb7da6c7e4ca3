"""Calibration, the operating threshold and their error bars: what makes a tile's 0.8 mean "80 % likely", and
what says how often a tumour tile is missed at the threshold the model uses."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pcam_evaluation_job import calibration, evaluate_model
from pcam_evaluation_job.calibration import (
    MAX_ISOTONIC_KNOTS,
    apply_calibration,
    expected_calibration_error,
    fit_calibration,
    operating_threshold,
    rates_at,
    reliability,
    wilson_interval,
)


def overconfident(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn with a true probability q, and a model that says q ** 0.25 (far too sure of tumour)."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0, 1, count)
    return (rng.uniform(0, 1, count) < truth).astype(int), truth**0.25


def test_the_maps_apply_as_written_down():
    scores = np.array([0.0, 0.2, 0.5, 0.9, 1.0])
    assert apply_calibration(None, scores).tolist() == scores.tolist()
    assert apply_calibration({"method": "none"}, scores).tolist() == scores.tolist()
    sigmoid = apply_calibration({"method": "sigmoid", "slope": 2.0, "intercept": -1.0}, np.array([0.5, 0.9]))
    assert sigmoid == pytest.approx([1 / (1 + np.e), 1 / (1 + np.exp(-(2 * np.log(9) - 1)))])
    isotonic = {"method": "isotonic", "x": [0.2, 0.6, 0.9], "y": [0.1, 0.3, 0.8]}
    assert apply_calibration(isotonic, scores) == pytest.approx([0.1, 0.1, 0.25, 0.8, 0.8])
    with pytest.raises(ValueError, match="unknown calibration method 'beta'"):
        apply_calibration({"method": "beta"}, scores)


def test_a_score_of_exactly_zero_or_one_stays_finite_under_the_sigmoid():
    calibrated = apply_calibration({"method": "sigmoid", "slope": 1.0, "intercept": 0.0}, np.array([0.0, 1.0]))
    assert np.isfinite(calibrated).all() and calibrated[0] < 1e-5 and calibrated[1] > 1 - 1e-5


def test_calibration_on_validation_makes_an_overconfident_model_honest_on_new_tiles():
    labels, scores = overconfident(3000)
    fitted = fit_calibration(labels, scores)
    assert fitted["method"] == min(fitted["cv_log_loss"], key=fitted["cv_log_loss"].get)
    assert set(fitted["cv_log_loss"]) == {"sigmoid", "isotonic"}
    test_labels, test_scores = overconfident(3000, seed=1)
    raw_error = expected_calibration_error(test_labels, test_scores)
    calibrated_error = expected_calibration_error(test_labels, apply_calibration(fitted, test_scores))
    assert raw_error > 0.15 and calibrated_error < 0.04, (raw_error, calibrated_error)


def test_each_method_is_chosen_when_it_fits_better():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2, 4000)
    sigmoid_world = (rng.uniform(0, 1, 4000) < 1 / (1 + np.exp(-logits))).astype(int)
    assert fit_calibration(sigmoid_world, 1 / (1 + np.exp(-logits / 3)))["method"] == "sigmoid"
    steps = rng.uniform(0, 1, 4000)
    step_world = (rng.uniform(0, 1, 4000) < np.where(steps > 0.5, 0.9, 0.05)).astype(int)
    assert fit_calibration(step_world, steps)["method"] == "isotonic"


def test_an_isotonic_map_is_kept_small_and_stays_monotone():
    rng = np.random.default_rng(4)
    scores = rng.uniform(0, 1, 20000)
    labels = (rng.uniform(0, 1, 20000) < scores).astype(int)
    fitted = calibration._fit_isotonic(labels, scores)
    assert len(fitted["x"]) <= MAX_ISOTONIC_KNOTS and len(fitted["x"]) == len(fitted["y"])
    assert np.all(np.diff(fitted["x"]) >= 0) and np.all(np.diff(fitted["y"]) >= 0)
    assert fitted["x"][0] == pytest.approx(scores.min(), abs=1e-3) and fitted["x"][-1] == pytest.approx(scores.max())


def test_too_few_tiles_of_a_class_leave_the_scores_uncalibrated_and_say_why():
    fitted = fit_calibration([1, 0, 0, 0], [0.9, 0.2, 0.1, 0.3])
    assert fitted == {"method": "none", "reason": "the validation split needs at least two tiles of each class"}
    assert fit_calibration([1, 1, 0, 0, 0], [0.9, 0.8, 0.2, 0.1, 0.3])["method"] in ("sigmoid", "isotonic")


def test_the_operating_threshold_is_the_highest_that_finds_the_target_share_of_tumour():
    labels = [1, 1, 1, 1, 1, 0, 0]
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.95, 0.1]
    assert operating_threshold(labels, scores, 0.8) == 0.6  # 4 of 5
    assert operating_threshold(labels, scores, 0.81) == 0.5  # 5 of 5
    assert operating_threshold(labels, scores, 0.2) == 0.9
    assert operating_threshold(labels, scores, 0.19) == 0.9  # at least one
    assert operating_threshold([1, 1, 1], [0.7, 0.7, 0.2], 0.5) == 0.7  # ties count together
    with pytest.raises(ValueError, match="no tumour tiles"):
        operating_threshold([0, 0], [0.1, 0.2], 0.95)


def test_wilson_intervals_match_published_values():
    assert wilson_interval(8, 10) == pytest.approx([0.4902, 0.9433], abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx([0.7225, 1.0], abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx([0.0, 0.2775], abs=1e-4)
    assert wilson_interval(0, 0) is None


def test_rates_at_a_threshold_count_a_tile_exactly_at_it_as_found():
    rates = rates_at([1, 1, 1, 0, 0], [0.5, 0.4, 0.9, 0.5, 0.1], 0.5)
    assert (rates["sensitivity"], rates["specificity"]) == (pytest.approx(2 / 3), 0.5)
    assert rates["sensitivity_ci95"] == pytest.approx(wilson_interval(2, 3))
    assert rates["specificity_ci95"] == pytest.approx(wilson_interval(1, 2))
    only_normal = rates_at([0, 0], [0.1, 0.9], 0.5)
    assert only_normal["sensitivity"] is None and only_normal["sensitivity_ci95"] is None


def test_reliability_bins_and_the_expected_calibration_error_by_hand():
    labels, probabilities = [0, 1, 1, 1], [0.05, 0.05, 0.95, 1.0]
    table = reliability(labels, probabilities)
    assert len(table) == 15 and (table[0]["low"], table[-1]["high"]) == (0.0, 1.0)
    assert table[0] == {"low": 0.0, "high": 1 / 15, "count": 2, "mean_predicted": 0.05, "observed": 0.5}
    assert table[14]["count"] == 2 and table[14]["mean_predicted"] == pytest.approx(0.975)
    assert table[7] == {"low": 7 / 15, "high": 8 / 15, "count": 0, "mean_predicted": None, "observed": None}
    # bin 0: |0.05 - 0.5| x 2/4; bin 14: |0.975 - 1| x 2/4
    assert expected_calibration_error(labels, probabilities) == pytest.approx(0.45 / 2 + 0.025 / 2)


def test_the_calibration_figures_compare_raw_and_calibrated_brier_and_ece():
    figures = calibration.calibration_figures([1, 0], [0.8, 0.4], [0.9, 0.1])
    assert figures["brier_raw"] == pytest.approx((0.04 + 0.16) / 2)
    assert figures["brier_calibrated"] == pytest.approx(0.01)
    assert figures["ece_raw"] == pytest.approx(0.3) and figures["ece_calibrated"] == pytest.approx(0.1)


PREFIX = "s3://data/images/datasets/pcam/"


def lay_out(base, split: str, labels, scores) -> None:
    """One split's labels manifest and transform outputs, as SageMaker downloads them for the job."""
    names = {"test": ("labels", "predictions"), "valid": ("valid_labels", "valid_predictions")}[split]
    (base / "input" / names[0]).mkdir(parents=True)
    (base / "input" / names[1]).mkdir(parents=True)
    lines = [json.dumps({"source-ref": f"{PREFIX}{split}/{i:07d}.jpg", "class": str(c)}) for i, c in enumerate(labels)]
    (base / "input" / names[0] / "x.manifest").write_text("\n".join(lines) + "\n")
    for index, score in enumerate(scores):
        body = json.dumps({"prediction": [1 - float(score), float(score)]})
        (base / "input" / names[1] / f"{index:07d}.jpg.out").write_text(body)


def test_the_evaluation_job_calibrates_and_chooses_its_threshold_on_validation_and_reports_on_test(tmp_path):
    valid_labels, valid_scores = overconfident(1500, seed=5)
    test_labels, test_scores = overconfident(1500, seed=6)
    lay_out(tmp_path, "valid", valid_labels, valid_scores)
    lay_out(tmp_path, "test", test_labels, test_scores)
    context = {"model_name": "m", "images_prefix": PREFIX + "test/", "valid_images_prefix": PREFIX + "valid/",
               "target_sensitivity": 0.9}  # fmt: skip
    (tmp_path / "input/context").mkdir()
    (tmp_path / "input/context/context.json").write_text(json.dumps(context))

    document = evaluate_model.run(tmp_path)

    point, fitted = document["operating_point"], document["calibration"]
    assert point["threshold_source"] == "validation split" and point["validation_count"] == 1500
    assert point["validation_sensitivity"] >= 0.9
    valid_calibrated = apply_calibration(fitted, valid_scores)
    assert point["threshold"] == operating_threshold(valid_labels, valid_calibrated, 0.9), "validation only"
    test_calibrated = apply_calibration(fitted, test_scores)
    expected = rates_at(test_labels, test_calibrated, point["threshold"])
    assert point["test_sensitivity"] == pytest.approx(expected["sensitivity"])
    assert point["test_specificity_ci95"] == pytest.approx(expected["specificity_ci95"])
    assert point["test_sensitivity_ci95"][0] < point["test_sensitivity"] < point["test_sensitivity_ci95"][1]
    assert document["threshold"] == point["threshold"] and document["recall"] == pytest.approx(expected["sensitivity"])
    assert fitted["test"]["ece_calibrated"] < fitted["test"]["ece_raw"]
    assert len(fitted["test"]["reliability_raw"]) == 15
    written = json.loads((tmp_path / "output/metrics.json").read_text())
    assert written["operating_point"] == point

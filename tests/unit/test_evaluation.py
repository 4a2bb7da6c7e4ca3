import io
import json

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from pcam_evaluation_job import evaluate_model
from pcam_evaluation_job.evaluate_model import evaluate, roc_csv
from pcam_pipeline.core.model_records import CurrentModel, ModelRecord
from pcam_pipeline.models.evaluation_report import promotion_decision, roc_png
from tests.picture_text import shows_text, text_positions


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


def test_an_asymmetric_case_with_a_score_exactly_at_the_threshold():
    """Swapped classes, swapped precision and recall, or > for >= at the threshold all change these figures."""
    labels = np.array([1, 1, 0, 0, 0, 0, 0, 1, 0, 0])
    scores = np.array([0.9, 0.5, 0.5, 0.7, 0.2, 0.1, 0.3, 0.4, 0.45, 0.05])
    result = evaluate(labels, scores, threshold=0.5)
    # >= 0.5 → predicted tumour: 0.9 (TP), 0.5 (TP, exactly at the threshold), 0.5 (FP), 0.7 (FP); 0.4 is a FN
    assert result["confusion_matrix"] == {
        "true_negative": 5,
        "false_positive": 2,
        "false_negative": 1,
        "true_positive": 2,
    }
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["precision"] == pytest.approx(2 / 4)
    assert result["f1"] == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))
    assert result["accuracy"] == pytest.approx(7 / 10)
    assert (result["count"], result["tumour_count"]) == (10, 3)
    # 21 (tumour, normal) pairs: 0.9 beats 7; 0.5 beats 5 and ties 0.5 (half); 0.4 beats 4 → 16.5 / 21
    assert result["auc"] == pytest.approx(16.5 / 21)


TEST_SPLIT = "pcam/test upload-1"


def evaluated(auc, test_split=TEST_SPLIT, experiment=False) -> ModelRecord:
    return ModelRecord("candidate", "pcam", "job", "s3://b/m", metrics={"auc": auc}, test_split=test_split,
                       experiment=experiment)  # fmt: skip


def current_model(auc, test_split=TEST_SPLIT) -> CurrentModel:
    return CurrentModel("current", "2026-12-01", "pipeline", "r", metrics={"auc": auc}, test_split=test_split)


def test_the_gate_promotes_a_model_exactly_at_the_minimum_auc():
    assert promotion_decision(evaluated(0.9), 0.9, None).promote
    assert not promotion_decision(evaluated(0.8999999), 0.9, None).promote


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
    decision = promotion_decision(evaluated(candidate), 0.90, current_model(current) if current else None)
    assert decision.promote is promote and reason in decision.reason


def test_the_gate_compares_only_models_evaluated_on_the_same_test_split():
    better_elsewhere = promotion_decision(evaluated(0.99, "smoke/test upload-9"), 0.5, current_model(0.95))
    assert not better_elsewhere.promote
    assert "do not compare" in better_elsewhere.reason and "smoke/test upload-9" in better_elsewhere.reason
    # a current model promoted before lineage was recorded is compared by AUC, as it was then
    assert promotion_decision(evaluated(0.96), 0.9, current_model(0.95, test_split=None)).promote


def test_an_experiments_model_never_passes_the_gate_even_as_the_first_model_with_a_perfect_auc():
    decision = promotion_decision(evaluated(1.0, experiment=True), 0.5, None)
    assert not decision.promote and "experiment" in decision.reason


PREFIX = "s3://b/images/datasets/pcam/test/run1/"


def _job_inputs(base, labels, predictions, context=None):
    """Lay out a processing job's inputs as SageMaker downloads them."""
    (base / "input/labels").mkdir(parents=True)
    (base / "input/predictions").mkdir(parents=True)
    (base / "input/context").mkdir(parents=True)
    lines = [json.dumps({"source-ref": f"{PREFIX}{i:07d}.jpg", "class": str(c)}) for i, c in enumerate(labels)]
    (base / "input/labels/abc.manifest").write_text("\n".join(lines) + "\n")
    for index, body in predictions.items():
        (base / f"input/predictions/{index:07d}.jpg.out").write_text(body)
    document = {"model_name": "m", "dataset": "pcam", "images_prefix": PREFIX, "threshold": 0.5, **(context or {})}
    (base / "input/context/context.json").write_text(json.dumps(document))


def _prediction(p: float) -> str:
    return json.dumps({"prediction": [1 - p, p]})


def test_the_evaluation_job_joins_predictions_to_labels_and_writes_metrics_and_roc(tmp_path):
    labels = [1, 1, 1, 0, 0, 0, 0, 1]
    scores = [0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.4, 0.7]
    _job_inputs(tmp_path, labels, {i: _prediction(p) for i, p in enumerate(scores)}, {"training_job": "t1"})
    assert evaluate_model.main(["--base-dir", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "output/metrics.json").read_text())
    assert metrics["auc"] == pytest.approx(14 / 16) and metrics["count"] == 8
    assert metrics["training_job"] == "t1" and metrics["model_name"] == "m" and metrics["evaluated_at"]
    assert (tmp_path / "output/roc.csv").read_text().startswith("threshold,")


@pytest.mark.parametrize(
    ("predictions", "problem"),
    [
        ({0: _prediction(0.9)}, "1 test images have no prediction, e.g. 0000001.jpg"),
        ({0: _prediction(0.9), 1: "{not json"}, "0000001.jpg.out is not a prediction of two classes"),
        ({0: _prediction(0.9), 1: json.dumps({"prediction": [1.0]})}, "is not a prediction of two classes"),
    ],
    ids=["missing-out", "unreadable-out", "one-class-out"],
)
def test_the_evaluation_job_fails_with_a_plain_reason_on_bad_predictions(tmp_path, capsys, predictions, problem):
    _job_inputs(tmp_path, [1, 0], predictions)
    assert evaluate_model.main(["--base-dir", str(tmp_path)]) == 1
    assert problem in capsys.readouterr().err
    assert not (tmp_path / "output/metrics.json").exists()


def test_a_test_set_of_one_class_has_no_auc_and_cannot_be_promoted(tmp_path):
    _job_inputs(tmp_path, [0, 0, 0], {i: _prediction(0.2) for i in range(3)})
    assert evaluate_model.main(["--base-dir", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "output/metrics.json").read_text())
    assert metrics["auc"] is None and metrics["accuracy"] == 1.0
    assert not promotion_decision(evaluated(metrics["auc"]), 0.9, None).promote
    assert Image.open(io.BytesIO(roc_png(metrics, "m"))).format == "PNG"


def test_the_roc_picture_draws_the_frame_ticks_diagonal_and_curve_where_they_belong():
    """Read the picture back: a perfect classifier's curve runs up the left edge and along the top."""
    result = evaluate(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]))
    picture = np.asarray(Image.open(io.BytesIO(roc_png(result, "m"))).convert("RGB")).astype(int)
    size, margin = 480, 60
    plot = size - 2 * margin

    def at(fpr: float, tpr: float):
        return picture[round(size - margin - tpr * plot), round(margin + fpr * plot)]

    curve, diagonal = (180, 30, 90), (160, 160, 160)
    assert tuple(at(0.0, 0.5)) == curve and tuple(at(0.5, 1.0)) == curve  # up the left, along the top
    assert tuple(at(0.5, 0.5)) == diagonal and tuple(at(0.25, 0.25)) == diagonal
    assert tuple(picture[size - margin, margin + plot // 3]) == (0, 0, 0)  # the frame's bottom edge
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):  # ticks below the x axis
        assert tuple(picture[size - margin + 3, round(margin + tick * plot)]) == (0, 0, 0)
    assert tuple(picture[margin + plot // 2, margin + plot // 2 + 40]) == (255, 255, 255)  # nothing else there


def test_the_default_threshold_is_one_half_and_is_reported():
    result = evaluate(np.array([0, 1, 1]), np.array([0.2, 0.5, 0.49]))
    assert result["threshold"] == 0.5
    assert result["confusion_matrix"]["true_positive"] == 1  # 0.5 is tumour, 0.49 is not


def test_undefined_precision_and_recall_count_as_zero_not_as_perfect():
    """No patch called tumour (precision 0/0), and a test set without tumour (recall 0/0)."""
    nothing_called = evaluate(np.array([0, 1, 1]), np.array([0.1, 0.2, 0.3]))
    assert (nothing_called["precision"], nothing_called["recall"], nothing_called["f1"]) == (0.0, 0.0, 0.0)
    no_tumour = evaluate(np.array([0, 0, 0]), np.array([0.9, 0.2, 0.3]))
    assert (no_tumour["precision"], no_tumour["recall"], no_tumour["f1"]) == (0.0, 0.0, 0.0)


def test_roc_thresholds_stay_probabilities_and_the_csv_has_one_row_per_point():
    result = evaluate(np.array([0, 1]), np.array([0.25, 0.75]))
    assert result["roc"]["thresholds"] == [1.0, 0.75, 0.25]  # scikit-learn's first threshold is infinite
    assert roc_csv(result) == (
        "threshold,false_positive_rate,true_positive_rate\n"
        "1.000000,0.000000,0.000000\n"
        "0.750000,0.000000,1.000000\n"
        "0.250000,1.000000,1.000000\n"
    )


def test_without_validation_outputs_the_job_uses_the_operators_threshold_or_one_half(tmp_path):
    _job_inputs(tmp_path / "a", [1, 0], {0: _prediction(0.6), 1: _prediction(0.4)}, {"threshold_override": 0.7})
    overridden = evaluate_model.run(tmp_path / "a")
    assert overridden["confusion_matrix"]["true_positive"] == 0 and overridden["threshold"] == 0.7
    assert overridden["operating_point"]["threshold_source"] == "DecisionThreshold override"
    _job_inputs(tmp_path / "b", [1, 0], {0: _prediction(0.6), 1: _prediction(0.4)})
    plain = evaluate_model.run(tmp_path / "b")
    assert plain["threshold"] == 0.5 and plain["operating_point"]["threshold_source"] == "default 0.5"
    assert plain["calibration"]["method"] == "none"


def test_the_job_writes_into_the_output_folder_sagemaker_already_made(tmp_path):
    _job_inputs(tmp_path, [1, 0], {0: _prediction(0.6), 1: _prediction(0.4)})
    (tmp_path / "output").mkdir()
    assert evaluate_model.main(["--base-dir", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "output/metrics.json").read_text())["count"] == 2


def test_a_blank_manifest_line_is_skipped_and_every_missing_prediction_is_counted(tmp_path, capsys):
    _job_inputs(tmp_path, [1, 0, 1], {0: _prediction(0.9)})
    manifest = tmp_path / "input/labels/abc.manifest"
    first, *rest = manifest.read_text().splitlines()
    manifest.write_text("\n".join([first, "", *rest]) + "\n")
    assert evaluate_model.main(["--base-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == "evaluation failed: 2 test images have no prediction, e.g. 0000001.jpg\n"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("no manifest", "expected one labels manifest, found 0"),
        ("empty manifest", "the test manifest lists no images"),
        ("three classes", "0000000.jpg.out is not a prediction of two classes: 3 classes"),
    ],
)
def test_the_job_names_what_does_not_fit_together(tmp_path, capsys, change, reason):
    _job_inputs(tmp_path, [1], {0: _prediction(0.9)})
    if change == "no manifest":
        (tmp_path / "input/labels/abc.manifest").unlink()
    elif change == "empty manifest":
        (tmp_path / "input/labels/abc.manifest").write_text("\n")
    else:
        (tmp_path / "input/predictions/0000000.jpg.out").write_text(json.dumps({"prediction": [0.1, 0.1, 0.8]}))
    assert evaluate_model.main(["--base-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"evaluation failed: {reason}\n"


def test_the_script_runs_as_the_processing_job_runs_it_and_reads_where_sagemaker_puts_inputs(tmp_path, monkeypatch):
    import subprocess
    import sys

    from pcam_pipeline.models.inference_requests import PROCESSING_ROOT

    _job_inputs(tmp_path, [1, 0], {0: _prediction(0.6), 1: _prediction(0.4)})
    script = evaluate_model.__file__
    finished = subprocess.run([sys.executable, script, "--base-dir", str(tmp_path)], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["count"] == 2
    bases = []

    def run(base):
        bases.append(base)
        return {"model_name": "m", "count": 0, "auc": None, "accuracy": 0}

    monkeypatch.setattr(evaluate_model, "run", run)
    evaluate_model.main([])
    assert str(bases[0]) == PROCESSING_ROOT


def test_the_roc_picture_names_its_model_auc_axes_and_ticks():
    result = evaluate(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]))
    png = roc_png(result, "model-a")
    for text in ("model-a   AUC = 0.750", "false positive rate", "true positive rate"):
        assert shows_text(png, text), text
    ticks = ("0.00", "0.25", "0.50", "0.75", "1.00")
    below, beside = [], []  # each tick value labels both axes: under the plot and left of it
    for tick in ticks:
        (under_x_axis,) = [p for p in text_positions(png, tick) if p[1] > 480 - 60]
        (left_of_y_axis,) = [p for p in text_positions(png, tick) if p[0] < 60 and p[1] < 480 - 60]
        below.append(under_x_axis[0])
        beside.append(left_of_y_axis[1])
    assert below == sorted(below) and beside == sorted(beside, reverse=True)  # 0 at the origin, 1 away from it
    assert shows_text(roc_png(evaluate(np.array([0, 0]), np.array([0.1, 0.2])), "m"), "m   AUC = n/a")


@pytest.mark.parametrize("layout", ["by relative path", "flat by file name"])
def test_the_evaluation_reads_either_output_layout_batch_transform_writes(tmp_path, layout):
    """Images under sub-folders of the input prefix: the outputs are under the same relative path, or flat."""
    (tmp_path / "input/labels").mkdir(parents=True)
    (tmp_path / "input/context").mkdir(parents=True)
    labels, scores = [1, 0, 1, 0], [0.9, 0.2, 0.7, 0.4]
    lines = [
        json.dumps({"source-ref": f"{PREFIX}part{i % 2}/{i:07d}.jpg", "class": str(c)}) for i, c in enumerate(labels)
    ]
    (tmp_path / "input/labels/abc.manifest").write_text("\n".join(lines) + "\n")
    for i, p in enumerate(scores):
        name = f"part{i % 2}/{i:07d}.jpg.out" if layout == "by relative path" else f"{i:07d}.jpg.out"
        (tmp_path / "input/predictions" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "input/predictions" / name).write_text(_prediction(p))
    (tmp_path / "input/context/context.json").write_text(json.dumps({"model_name": "m", "images_prefix": PREFIX}))
    assert evaluate_model.main(["--base-dir", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "output/metrics.json").read_text())["auc"] == 1.0

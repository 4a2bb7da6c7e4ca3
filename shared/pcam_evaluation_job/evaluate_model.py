"""Test-set evaluation of one model: the script a SageMaker Processing job runs in the scikit-learn container.

Standalone on purpose (numpy and scikit-learn only, Python 3.8+): scikit-learn with SciPy does not fit
beside the domain layer within Lambda's 250 MB, so the metrics are computed where scikit-learn already
is. The model-events function uploads this file as the job's code; the local stand-in runs the same file.

Inputs under ``<base>/input/``: ``labels/`` (the test split's augmented manifest), ``predictions/``
(the Batch Transform's ``<name>.jpg.out`` files), the same for the validation split (``valid_labels/``,
``valid_predictions/``) and ``context/context.json`` (model, dataset, target sensitivity, any threshold
override, images prefixes, lineage). Output: ``<base>/output/metrics.json`` and ``roc.csv``.

From the validation outputs only: the calibration map and the operating threshold (``calibration.py``).
On the test split: AUC, the figures at that threshold on calibrated scores, and calibration error.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

if __package__:
    from pcam_evaluation_job import calibration
else:  # run as the processing job's script, beside calibration.py
    import calibration  # type: ignore[no-redef]


class EvaluationInputError(Exception):
    """The job's inputs do not fit together; the message becomes the job's failure reason."""


def evaluate(labels, tumour_probability, threshold: float = 0.5) -> dict:
    """Recall, precision, F1, AUC, accuracy, confusion matrix and ROC points of one model on one test set."""
    from sklearn import metrics  # here, so Lambda can import the prediction parser without scikit-learn

    labels = np.asarray(labels).astype(int)
    scores = np.asarray(tumour_probability, dtype=float)
    predicted = (scores >= threshold).astype(int)
    (tn, fp), (fn, tp) = metrics.confusion_matrix(labels, predicted, labels=[0, 1])
    both_classes = len(set(labels.tolist())) == 2
    fpr, tpr, thresholds = metrics.roc_curve(labels, scores) if both_classes else ([], [], [])
    return {
        "count": int(labels.size),
        "tumour_count": int(labels.sum()),
        "threshold": threshold,
        # AUC is undefined on a test set holding one class only; the promotion gate then refuses the model.
        "auc": float(metrics.roc_auc_score(labels, scores)) if both_classes else None,
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
            "false_positive_rate": [float(v) for v in fpr],
            "true_positive_rate": [float(v) for v in tpr],
            "thresholds": [float(min(t, 1.0)) for t in thresholds],
        },
    }


def roc_csv(evaluation: dict) -> str:
    roc = evaluation["roc"]
    rows = zip(roc["thresholds"], roc["false_positive_rate"], roc["true_positive_rate"])
    return "threshold,false_positive_rate,true_positive_rate\n" + "".join(
        "{:.6f},{:.6f},{:.6f}\n".format(*row) for row in rows
    )


def tumour_probability(body, name: str) -> float:
    """The built-in algorithm's output for one image, ``{"prediction": [p_normal, p_tumour]}``: p_tumour."""
    try:
        prediction = json.loads(body)["prediction"]
        if len(prediction) != 2:
            raise ValueError(f"{len(prediction)} classes")
        return float(prediction[1])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise EvaluationInputError(f"{name} is not a prediction of two classes: {exc}") from exc


def output_layout(predictions_dir: Path, first: str):
    """Where the transform put its outputs, told by the first image's (``first``, relative to the input prefix):
    under the same relative path, or flat under the output path by file name. SageMaker's docs name both
    (an output "in the same relative path" for an S3Prefix input; flat for a ManifestFile's entries), and the
    scoring's gathering accepts both too."""
    by_path = lambda relative: relative  # noqa: E731
    by_name = lambda relative: relative.rsplit("/", 1)[-1]  # noqa: E731
    for layout in (by_path, by_name):
        if (predictions_dir / (layout(first) + ".out")).is_file():
            return layout
    return by_path  # neither: the image is reported missing


def read_test_set(
    base: Path, images_prefix: str, labels_input: str = "labels", predictions_input: str = "predictions"
) -> tuple[list[int], list[float]]:
    """Labels from the manifest and the matching prediction of every listed image, in manifest order."""
    manifests = sorted((base / "input" / labels_input).rglob("*.manifest"))
    if len(manifests) != 1:
        raise EvaluationInputError(f"expected one {labels_input} manifest, found {len(manifests)}")
    predictions_dir = base / "input" / predictions_input
    labels, scores, missing = [], [], []
    layout = None
    for line in manifests[0].read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        relative = record["source-ref"][len(images_prefix) :]
        layout = layout or output_layout(predictions_dir, relative)
        prediction_file = predictions_dir / (layout(relative) + ".out")
        if not record["source-ref"].startswith(images_prefix) or not prediction_file.is_file():
            missing.append(relative)
            continue
        labels.append(int(record["class"]))
        scores.append(tumour_probability(prediction_file.read_bytes(), prediction_file.name))
    if missing:
        raise EvaluationInputError(f"{len(missing)} test images have no prediction, e.g. {missing[0]}")
    if not labels:
        raise EvaluationInputError("the test manifest lists no images")
    return labels, scores


def calibrated_operating_point(base: Path, context: dict, labels, scores) -> tuple[dict, dict, np.ndarray]:
    """The calibration map and operating point from the validation split, and the calibrated test scores.

    Without validation outputs (a model evaluated before they were scored) the scores stay as they are and
    the threshold is the override or 0.5."""
    override = context.get("threshold_override")
    target = float(context.get("target_sensitivity", 0.95))
    point: dict = {"target_sensitivity": target}
    if context.get("valid_images_prefix") and (base / "input" / "valid_labels").is_dir():
        valid_labels, valid_scores = read_test_set(
            base, context["valid_images_prefix"], "valid_labels", "valid_predictions"
        )
        fitted = calibration.fit_calibration(valid_labels, valid_scores)
        valid_calibrated = calibration.apply_calibration(fitted, valid_scores)
        chosen = calibration.operating_threshold(valid_labels, valid_calibrated, target) if 1 in valid_labels else 0.5
        point["threshold"] = float(override) if override is not None else chosen
        point["threshold_source"] = "DecisionThreshold override" if override is not None else "validation split"
        at_valid = calibration.rates_at(valid_labels, valid_calibrated, point["threshold"])
        point["validation_sensitivity"], point["validation_specificity"] = (
            at_valid["sensitivity"],
            at_valid["specificity"],
        )
        point["validation_count"] = len(valid_labels)
    else:
        fitted = {"method": "none", "reason": "no validation outputs"}
        point["threshold"] = float(override) if override is not None else 0.5
        point["threshold_source"] = "DecisionThreshold override" if override is not None else "default 0.5"
    calibrated = calibration.apply_calibration(fitted, scores)
    point.update(
        {f"test_{name}": value for name, value in calibration.rates_at(labels, calibrated, point["threshold"]).items()}
    )
    return fitted, point, calibrated


def run(base: Path) -> dict:
    context = json.loads((base / "input" / "context" / "context.json").read_text())
    labels, scores = read_test_set(base, context["images_prefix"])
    fitted, point, calibrated = calibrated_operating_point(base, context, labels, scores)
    figures = evaluate(labels, calibrated, point["threshold"])
    raw_auc = evaluate(labels, scores)["auc"]
    figures["auc_calibrated"], figures["auc"] = figures["auc"], raw_auc  # ranking: the model's own scores
    document = dict(context)
    document.update(figures)
    document["calibration"] = {**fitted, "test": calibration.calibration_figures(labels, scores, calibrated)}
    document["operating_point"] = point
    document["evaluated_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    output = base / "output"
    output.mkdir(parents=True, exist_ok=True)
    (output / "metrics.json").write_text(json.dumps(document, indent=2))
    (output / "roc.csv").write_text(roc_csv(figures))
    return document


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-dir", default="/opt/ml/processing")
    args = parser.parse_args(argv)
    try:
        document = run(Path(args.base_dir))
    except EvaluationInputError as exc:
        # SageMaker reports the last lines of output as the job's failure reason.
        print(f"evaluation failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({k: document[k] for k in ("model_name", "count", "auc", "accuracy")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

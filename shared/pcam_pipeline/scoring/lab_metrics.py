"""Drift per lab: what each scored slide tells CloudWatch, with the lab as a dimension, so that the dashboard and
the QC alarm watch each lab apart (docs/operations.md, "Drift per lab")."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from pcam_pipeline.aws.observability import metrics

# The metrics, their units, and what the dashboard and the alarm query them by (the service dimension is
# Powertools' own).
NAMESPACE = "PcamPipeline"  # the template's POWERTOOLS_METRICS_NAMESPACE, for runs outside a function's environment
LAB = "Lab"
VERDICT = "Verdict"
OWN_SLIDES = "-"  # the Lab of a slide dropped outside labs/ (lab names are lower-case letters, digits, hyphens)
QC_FAIL_FRACTION = "QcFailFraction"
MEAN_TUMOUR_PROBABILITY = "MeanTumourProbability"
STAIN_DISTANCE = "StainDistanceDegrees"
SLIDES_BY_VERDICT = "SlidesByVerdict"
LAB_METRICS = (QC_FAIL_FRACTION, MEAN_TUMOUR_PROBABILITY, STAIN_DISTANCE, SLIDES_BY_VERDICT)


def lab_metric_values(summary: dict[str, Any]) -> list[tuple[str, MetricUnit, float, dict[str, str]]]:
    """(metric, unit, value, dimensions) for one scored slide's summary. Pure."""
    lab = {LAB: summary.get("lab") or OWN_SLIDES}
    values = [
        (MEAN_TUMOUR_PROBABILITY, MetricUnit.NoUnit, float(summary["mean_probability"]), lab),
        (SLIDES_BY_VERDICT, MetricUnit.Count, 1.0, {**lab, VERDICT: summary["verdict"]["category"]}),
    ]
    qc = summary.get("qc") or {}
    if "failing_fraction" in qc:
        values.append((QC_FAIL_FRACTION, MetricUnit.NoUnit, float(qc["failing_fraction"]), lab))
    stain = summary.get("stain") or {}
    if stain.get("distance_degrees") is not None:
        values.append((STAIN_DISTANCE, MetricUnit.NoUnit, float(stain["distance_degrees"]), lab))
    return values


def emit_lab_metrics(summary: dict[str, Any]) -> None:
    """One embedded-metric-format record per value: each carries its own dimensions (Powertools single_metric)."""
    for name, unit, value, dimensions in lab_metric_values(summary):
        with single_metric(name=name, unit=unit, value=value, namespace=metrics.namespace or NAMESPACE) as metric:
            for dimension, dimension_value in dimensions.items():
                metric.add_dimension(name=dimension, value=dimension_value)

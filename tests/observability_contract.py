"""The metrics the functions really emit (CloudWatch embedded metric format in their logs), against the
template's alarms and the operators' documentation."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
OWN_NAMESPACE = "PcamPipeline"


def emitted_metrics(log_dir: Path) -> set[tuple[str, str, frozenset]]:
    """(namespace, metric, {(dimension, value)}) of every EMF record the functions printed."""
    found = set()
    for log in log_dir.glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if not line.startswith('{"_aws"'):
                continue
            record = json.loads(line)
            for directive in record["_aws"]["CloudWatchMetrics"]:
                for dimension_set in directive["Dimensions"]:
                    dimensions = frozenset((name, record[name]) for name in dimension_set)
                    for metric in directive["Metrics"]:
                        found.add((directive["Namespace"], metric["Name"], dimensions))
    return found


QUERY = re.compile(r"SELECT \w+\((\w+)\) FROM SCHEMA\((\w+), ([\w, ]+)\)")


def query_problems(where: str, expression: str, emitted: set[tuple[str, str, frozenset]]) -> list[str]:
    """A Metrics Insights query on the pipeline's metrics whose metric and dimension names match no emitted
    record (SCHEMA names every dimension the metric has)."""
    found = QUERY.search(expression)
    if found is None:
        return [f"{where}: {expression!r} is not a query this check reads"]
    metric, namespace, names = found[1], found[2], frozenset(n.strip() for n in found[3].split(","))
    if any(ns == namespace and m == metric and {d for d, _ in dims} == names for ns, m, dims in emitted):
        return []
    return [f"{where} queries {metric} by {sorted(names)}, which no function emitted; emitted: {sorted(emitted)}"]


def dashboard_problems(template: dict, emitted: set[tuple[str, str, frozenset]]) -> list[str]:
    """Dashboard widgets on the pipeline's metrics that show something no function emits: each metric by its
    name and dimensions, each query by its metric and dimension names."""
    problems = []
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Dashboard":
            continue
        body = resource["Properties"]["DashboardBody"]["Fn::Sub"]
        widgets = json.loads(re.sub(r"\$\{[^}]+\}", "resolved", body))["widgets"]
        for widget in (w for w in widgets if w["type"] == "metric"):
            for line in widget["properties"]["metrics"]:
                where = f"{name} widget {widget['properties']['title']!r}"
                if isinstance(line[0], dict):
                    problems += query_problems(where, line[0]["expression"], emitted)
                    continue
                if line[0] != OWN_NAMESPACE:
                    continue
                names = [part for part in line[2:] if isinstance(part, str)]
                shown = (line[0], line[1], frozenset(zip(names[::2], names[1::2], strict=True)))
                if shown not in emitted:
                    problems.append(f"{where} shows {shown}, which no function emitted")
    return problems


def alarm_problems(template: dict, emitted: set[tuple[str, str, frozenset]]) -> list[str]:
    """Alarms on the pipeline's own metrics that watch something no function emits."""
    problems = []
    for name, resource in template["Resources"].items():
        alarm = resource["Properties"] if resource["Type"] == "AWS::CloudWatch::Alarm" else None
        for query in (alarm or {}).get("Metrics", []):
            if "SCHEMA(" in query.get("Expression", ""):
                problems += query_problems(name, query["Expression"], emitted)
        if alarm is None or alarm.get("Namespace") != OWN_NAMESPACE:
            continue
        watched = (
            alarm["Namespace"],
            alarm["MetricName"],
            frozenset((d["Name"], d["Value"]) for d in alarm["Dimensions"]),
        )
        if watched not in emitted:
            problems.append(f"{name} watches {watched}, which no function emitted; emitted: {sorted(emitted)}")
    return problems


def metric_names_in_code() -> set[str]:
    from pcam_pipeline.scoring.lab_metrics import LAB_METRICS

    pattern = re.compile(r'add_metric\(name="(\w+)"')
    return {m for path in (ROOT / "shared").rglob("*.py") for m in pattern.findall(path.read_text())} | set(LAB_METRICS)

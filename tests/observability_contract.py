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


def alarm_problems(template: dict, emitted: set[tuple[str, str, frozenset]]) -> list[str]:
    """Alarms on the pipeline's own metrics that watch something no function emits."""
    problems = []
    for name, resource in template["Resources"].items():
        alarm = resource["Properties"] if resource["Type"] == "AWS::CloudWatch::Alarm" else None
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
    pattern = re.compile(r'add_metric\(name="(\w+)"')
    return {m for path in (ROOT / "shared").rglob("*.py") for m in pattern.findall(path.read_text())}

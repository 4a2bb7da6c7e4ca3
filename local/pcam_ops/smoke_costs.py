"""What a smoke run's SageMaker jobs cost: how long each ran, at on-demand list price."""

from __future__ import annotations

from datetime import datetime

from pcam_pipeline.core.model_records import JobRecord

# On-demand list prices in us-east-1, USD per instance-hour (AWS SageMaker pricing page, as of 2025;
# other regions differ): an estimate for the operator, not a bill.
PRICE_REGION = "us-east-1"
PRICE_PER_HOUR = {
    "ml.g4dn.xlarge": 0.736,
    "ml.g5.xlarge": 1.408,
    "ml.p3.2xlarge": 3.825,
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.23,
    "ml.c5.xlarge": 0.204,
}


def price_note(region: str | None) -> str:
    """Which region's prices the estimate uses, and whether it is the deployment's."""
    note = f"{PRICE_REGION} on-demand list prices, known for {', '.join(sorted(PRICE_PER_HOUR))}"
    return note if region == PRICE_REGION else f"{note}; this deployment is in {region}, where prices differ"


def job_costs(jobs: list[JobRecord], training_instance: str, parameters: dict[str, str]) -> list[dict]:
    """Each job's minutes and estimated USD (None where the instance's price is not known)."""
    transform = (parameters.get("TransformInstanceType"), int(parameters.get("TransformInstanceCount") or 1))
    instance_of = {
        "training": (training_instance, 1),
        "test transform": transform,
        "validation transform": transform,
        "slide scoring": transform,
        "evaluation": (parameters.get("EvaluationInstanceType"), 1),
    }
    found = []
    for record in jobs:
        if not (record.started_at and record.ended_at):
            continue
        instance, count = instance_of.get(record.kind, (None, 1))
        seconds = (datetime.fromisoformat(record.ended_at) - datetime.fromisoformat(record.started_at)).total_seconds()
        price = PRICE_PER_HOUR.get(instance or "")
        found.append(
            {
                "job": record.name,
                "kind": str(record.kind),
                "instance": instance,
                "minutes": round(seconds / 60, 1),
                "estimated_usd": None if price is None else round(seconds / 3600 * price * count, 4),
            }
        )
    return found

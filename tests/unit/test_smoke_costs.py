"""What `pcam smoke` says its jobs cost: minutes times the instance's price, and whose prices those are."""

from pcam_ops.smoke_costs import job_costs, price_note
from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.core.model_records import JobRecord


def test_each_job_costs_its_minutes_at_its_instances_price_and_unknown_prices_stay_unknown():
    jobs = [
        JobRecord("t1", JobKind.TRAINING, started_at="2026-12-07T10:00:00+00:00", ended_at="2026-12-07T10:30:00+00:00"),
        JobRecord(
            "s1", JobKind.SLIDE_SCORING, started_at="2026-12-07T11:00:00+00:00", ended_at="2026-12-07T12:00:00+00:00"
        ),
        JobRecord("never-ran", JobKind.TRAINING),
    ]
    costs = job_costs(jobs, "ml.g4dn.xlarge", {"TransformInstanceType": "ml.x9.huge", "TransformInstanceCount": "2"})
    assert [(c["job"], c["minutes"], c["estimated_usd"]) for c in costs] == [("t1", 30.0, 0.368), ("s1", 60.0, None)]


def test_the_estimate_says_whose_prices_it_uses_and_when_the_deployment_is_elsewhere():
    assert price_note("us-east-1").startswith("us-east-1 on-demand list prices")
    assert price_note("eu-west-1").endswith("this deployment is in eu-west-1, where prices differ")

"""A tuning job's trials, as SageMaker names and runs them: each a training job with hyperparameters drawn from
the job's ranges (random search stands in for Bayesian), and the best by its objective reported."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from pcam_local.job_failures import TuningFailed
from pcam_local.sagemaker_job import Job


def trial_request(job: Job, index: int, rng: random.Random) -> tuple[str, dict[str, Any]]:
    """Trial ``index`` of the tuning job: its name (``<tuning job>-NNN-<hash>``) and its training request."""
    config, definition = job.request["HyperParameterTuningJobConfig"], job.request["TrainingJobDefinition"]
    sampled = sample(config.get("ParameterRanges", {}), rng)
    name = f"{job.name}-{index:03d}-{rng.getrandbits(32):08x}"
    request = {
        "TrainingJobName": name,
        "HyperParameters": {**definition.get("StaticHyperParameters", {}), **sampled},
        **{k: v for k, v in definition.items() if k != "StaticHyperParameters"},
        "AlgorithmSpecification": definition["AlgorithmSpecification"],
    }
    return name, request


def tuning_outputs(config: dict, trials: list[Job]) -> dict[str, Any]:
    """What DescribeHyperParameterTuningJob reports once the trials ran: the best completed one (the first of
    equals), or the job fails when none completed."""
    completed = [(t.outputs["FinalMetricDataList"][0]["Value"], i, t) for i, t in enumerate(trials)
                 if t.status == "Completed"]  # fmt: skip
    if not completed:
        raise TuningFailed("All training jobs failed")
    accuracy, _, best = max(completed, key=lambda t: (t[0], -t[1]))
    return {
        "BestTrainingJob": {
            "TrainingJobName": best.name,
            "TrainingJobArn": best.arn,
            "CreationTime": best.created,
            "TrainingJobStatus": "Completed",
            "TunedHyperParameters": {k: best.request["HyperParameters"][k] for k in tuned_names(config)},
            "FinalHyperParameterTuningJobObjectiveMetric": {
                "MetricName": config["HyperParameterTuningJobObjective"]["MetricName"],
                "Value": accuracy,
            },
        },
        "TrainingJobStatusCounters": {"Completed": len(completed)},
    }


def tuned_names(config: dict) -> list[str]:
    return [r["Name"] for ranges in config.get("ParameterRanges", {}).values() for r in ranges]


def sample(ranges: dict, rng: random.Random) -> dict[str, str]:
    """One trial's hyperparameters, drawn from the tuning job's ranges (random search stands in for Bayesian)."""
    sampled = {}
    for spec in ranges.get("ContinuousParameterRanges", []):
        low, high = float(spec["MinValue"]), float(spec["MaxValue"])
        if spec.get("ScalingType") == "Logarithmic":
            value = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        else:
            value = rng.uniform(low, high)
        sampled[spec["Name"]] = f"{value:.6g}"
    for spec in ranges.get("IntegerParameterRanges", []):
        sampled[spec["Name"]] = str(rng.randint(int(spec["MinValue"]), int(spec["MaxValue"])))
    for spec in ranges.get("CategoricalParameterRanges", []):
        sampled[spec["Name"]] = rng.choice(spec["Values"])
    return sampled

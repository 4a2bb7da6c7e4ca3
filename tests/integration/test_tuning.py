"""With TuningMaxJobs set, a complete dataset starts a tuning job whose best trial becomes the model."""

import numpy as np

from pcam_local.local_stack import LocalStack
from pcam_local.synth import synth_split
from tests.integration.conftest import INTEGRATION, TEST_PARAMETERS, Pipeline, assert_every_call_was_allowed

pytestmark = INTEGRATION


def test_a_tuning_job_runs_its_trials_and_its_best_training_job_continues_the_flow(tmp_path):
    parameters = {**TEST_PARAMETERS, "TuningMaxJobs": "2", "TuningParallelJobs": "1"}
    with LocalStack(parameters=parameters, work_dir=tmp_path) as stack:
        pipeline = Pipeline(stack)
        rng = np.random.default_rng(7)
        for split, count in (("train", 240), ("valid", 80), ("test", 120)):
            pipeline.drop_split("tuned", split, *synth_split(count, rng))
        pipeline.settle()

        jobs = [r for r in stack.records() if r["pk"].startswith("job#")]
        (tuning,) = [j for j in jobs if j["kind"] == "tuning"]
        tuning_name = tuning["pk"].removeprefix("job#")
        assert tuning["status"] == "Completed" and len(tuning_name) <= 32
        assert not [j for j in jobs if j["kind"] == "training"], "trials are SageMaker's jobs, not recorded as ours"
        trials = {
            e["detail"]["TrainingJobName"]
            for e in stack.sagemaker.events_sent
            if e["detail-type"] == "SageMaker Training Job State Change"
        }
        assert len(trials) == 2 and all(t.startswith(tuning_name + "-") for t in trials)

        (model,) = stack.state.query("models", "model#")
        assert model["model_name"] in trials and model["tuning_job"] == tuning_name
        assert model["status"] == "evaluated" and model["decision"]["promote"] is True
        assert stack.state.get("models", "current")["model_name"] == model["model_name"]
        assert not any(stack.dead_letters().values())
        assert_every_call_was_allowed(stack)  # DescribeHyperParameterTuningJob and friends included

"""With TuningMaxJobs set, a complete dataset starts a tuning job whose best trial becomes the model."""

import numpy as np

from pcam_local.local_stack import LocalStack
from pcam_synth.synth import synth_split
from pcam_training.local_model import LocalImageClassifier
from tests.integration.conftest import INTEGRATION, TEST_PARAMETERS, Pipeline, assert_every_call_was_allowed

pytestmark = INTEGRATION


def test_a_tuning_job_runs_its_trials_and_its_best_training_job_continues_the_flow(tmp_path):
    parameters = {**TEST_PARAMETERS, "TuningMaxJobs": "3", "TuningParallelJobs": "1"}
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
        assert len(trials) == 3 and all(t.startswith(tuning_name + "-") for t in trials)

        (model,) = stack.state.query("models", "model#")
        assert model["model_name"] in trials and model["tuning_job"] == tuning_name
        # The best trial by the objective (validation:accuracy, first of equals) is the one carried forward.
        # Each trial's sampled hyperparameters steer the local model differently, so trials really differ
        # (one run here: 0.8625, 0.8875, 0.8625 — the second was carried forward).
        ran = [job for job in stack.sagemaker._jobs.values() if job.name in trials]
        accuracy = {job.name: job.outputs["FinalMetricDataList"][0]["Value"] for job in ran}
        assert model["model_name"] == max(sorted(accuracy), key=lambda name: accuracy[name])
        steering = {
            (m.learning_rate, m.l2_regularization, m.max_leaf_nodes)
            for m in (LocalImageClassifier.from_hyperparameters(job.request["HyperParameters"]) for job in ran)
        }
        assert len(steering) == len(ran)
        assert model["status"] == "evaluated" and model["decision"]["promote"] is True
        assert stack.state.get("models", "current")["model_name"] == model["model_name"]
        assert not any(stack.dead_letters().values())
        assert_every_call_was_allowed(stack)  # DescribeHyperParameterTuningJob and friends included

"""`pcam smoke` works unchanged against `pcam local up`, as against a real deployment after `sam deploy`."""

import os
import re
import signal
import subprocess
import sys
import time

import boto3
import pytest

from pcam_local.moto_server import free_port
from pcam_ops.cli import main
from pcam_ops.operations import stack_outputs
from pcam_pipeline.state import StateStore
from tests.integration.conftest import INTEGRATION

pytestmark = [*INTEGRATION, pytest.mark.scenario]  # steps of one story, in order: a new deployment, then a lab


@pytest.fixture(scope="module")
def local_up():
    """`pcam local up` in its own process group, and the environment it prints for operator commands."""
    port = free_port()
    command = [sys.executable, "-m", "pcam_ops.cli", "local", "up", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--parameter", "PromotionMinimumAuc=0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        printed, deadline = "", time.monotonic() + 90
        while "pcam models --stack pcam-local" not in printed and time.monotonic() < deadline:
            printed += server.stdout.readline()
        exports = re.search(r"export (.+)", printed).group(1)
        yield dict(item.split("=", 1) for item in exports.split())
    finally:
        server.send_signal(signal.SIGTERM)  # stops as cleanly as on Ctrl-C
        try:
            assert server.wait(timeout=60) == 0
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)


@pytest.fixture
def operator_env(local_up, monkeypatch):
    for name, value in local_up.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    return local_up


def current_model_of(operator_env):
    return StateStore(stack_outputs("pcam-local")["StateTableName"]).current_model()


def smoke(capsys) -> tuple[str, str]:
    """Run `pcam smoke --clean`; what it printed, and its dataset's name."""
    code = main(["smoke", "--stack", "pcam-local", "--epochs", "1", "--timeout", "300", "--clean"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    for step in ("training settings recorded", "train split converted", "slide converted", "whole-slide image cut",
                 "training job", "model evaluated", "slide scored", "whole-slide image scored"):  # fmt: skip
        assert f"✓ {step}" in printed
    assert "ml.g4dn.xlarge" in printed and "estimated total: $" in printed
    assert "us-east-1 on-demand list prices" in printed, "says which region's prices it used"
    assert "not current (trained as an experiment" in printed, "a smoke model never becomes current"
    return printed, re.search(r"(smoke-\d{8}-\d{6})", printed).group(1)


def objects(prefix: str) -> int:
    bucket = stack_outputs("pcam-local")["DataBucketName"]
    return boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0)


def test_on_a_new_deployment_smoke_scores_its_slides_with_its_own_model_and_cleans_up(operator_env, capsys):
    printed, dataset = smoke(capsys)
    assert re.search(rf"✓ slide scored .* by pcam-{dataset}-train-", printed), printed
    assert current_model_of(operator_env) is None, "no model is current: the smoke model did not become it"
    cleaned = ["incoming/datasets/{}/", "predictions/{}.", "predictions/{}-wsi.", "tiling/{}-wsi/",
               "incoming/slides/{}-wsi.tif", "models/pcam-{}-"]  # fmt: skip
    for prefix in cleaned:
        assert not objects(prefix.format(dataset)), prefix


def test_a_labs_dataset_gives_the_deployment_its_current_model(operator_env, tmp_path):
    from pcam_synth.drops import synth_drop

    for path in synth_drop(tmp_path, dataset="lab", train=300, valid=100, test=160, slides=0, seed=3):
        key = "incoming/" + path.relative_to(tmp_path).as_posix()
        boto3.client("s3").upload_file(str(path), stack_outputs("pcam-local")["DataBucketName"], key)
    deadline = time.monotonic() + 240
    while current_model_of(operator_env) is None and time.monotonic() < deadline:
        time.sleep(2)
    assert current_model_of(operator_env).dataset == "lab"


def test_smoke_after_a_labs_model_is_scored_by_that_model_which_stays_current_with_its_files(operator_env, capsys):
    current = current_model_of(operator_env)
    printed, _ = smoke(capsys)
    assert re.search(rf"✓ slide scored .* by {current.model_name}", printed), printed
    assert current_model_of(operator_env) == current
    assert objects(f"models/{current.training_job}/") and objects(f"evaluations/{current.model_name}/"), "kept"


def test_smoke_fails_with_the_reason_when_a_step_fails(operator_env, capsys):
    code = main(["smoke", "--stack", "pcam-local", "--instance-type", "ml.t2.nano", "--timeout", "60", "--clean"])
    printed = capsys.readouterr().err
    assert code == 1
    assert "smoke test failed" in printed and "not a SageMaker training instance type" in printed

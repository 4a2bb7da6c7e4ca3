"""`pcam smoke` works unchanged against `pcam local up`, as against a real deployment after `sam deploy`."""

import os
import re
import signal
import subprocess
import sys
import time

import boto3
import pytest

from pcam_local.stack import free_port
from pcam_ops.cli import main
from tests.integration.conftest import INTEGRATION

pytestmark = INTEGRATION


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


def test_smoke_follows_every_step_reports_costs_and_cleans_up(operator_env, capsys):
    code = main(["smoke", "--stack", "pcam-local", "--epochs", "1", "--timeout", "300", "--clean"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    for step in ("training settings recorded", "train split converted", "slide converted", "whole-slide image cut",
                 "training job", "model evaluated", "slide scored", "whole-slide image scored"):  # fmt: skip
        assert f"✓ {step}" in printed
    assert "ml.g4dn.xlarge" in printed and "estimated total: $" in printed
    dataset = re.search(r"(smoke-\d{8}-\d{6})", printed).group(1)
    s3 = boto3.client("s3")
    bucket = re.search(r"s3://([^/]+)/incoming/", printed).group(1)
    assert not s3.list_objects_v2(Bucket=bucket, Prefix=f"incoming/datasets/{dataset}/").get("KeyCount")
    assert not s3.list_objects_v2(Bucket=bucket, Prefix=f"predictions/{dataset}.").get("KeyCount")
    for prefix in (f"predictions/{dataset}-wsi.", f"tiling/{dataset}-wsi/", f"incoming/slides/{dataset}-wsi.tif"):
        assert not s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount"), prefix


def test_smoke_fails_with_the_reason_when_a_step_fails(operator_env, capsys):
    code = main(["smoke", "--stack", "pcam-local", "--instance-type", "ml.t2.nano", "--timeout", "60", "--clean"])
    printed = capsys.readouterr().out
    assert code == 1
    assert "smoke test failed" in printed and "not a SageMaker training instance type" in printed

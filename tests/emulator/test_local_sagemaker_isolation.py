"""The local SageMaker runs a job whose request asks for network isolation with every connection refused, as
SageMaker runs its container with no network (tests/unit/test_sagemaker_lockdown.py checks that every request
asks for it)."""

import subprocess
import sys

import pytest

from pcam_local.local_processing import without_network


@pytest.mark.parametrize(
    ("script", "isolated_ok"),
    [
        ("import socket; socket.create_connection(('127.0.0.1', 9), timeout=1)", False),
        ("import urllib.request; urllib.request.urlopen('http://127.0.0.1:9', timeout=1)", False),
        ("import sys; print(sum(range(10)), sys.argv[1:])", True),
    ],
    ids=["socket", "http", "no-network-needed"],
)
def test_the_local_sagemaker_runs_an_isolated_job_with_every_connection_refused(tmp_path, script, isolated_ok):
    path = tmp_path / "job.py"
    path.write_text(script)
    isolated = subprocess.run(without_network([sys.executable, str(path), "--base-dir", "x"]), capture_output=True,
                              text=True, check=False)  # fmt: skip
    assert (isolated.returncode == 0) is isolated_ok, isolated.stderr
    if not isolated_ok:
        assert "network isolation" in isolated.stderr
    else:
        assert isolated.stdout.strip() == "45 ['--base-dir', 'x']", "the script runs as __main__ with its arguments"

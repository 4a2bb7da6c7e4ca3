"""`pcam lab add | list | update | remove` on a deployment rehearsed on moto under SSE-KMS: a lab's policy written
before the switch to SSE-KMS is reported stale by `pcam lab list` and `pcam status`, and `pcam lab update`
makes it the template's, which lets the lab use the bucket's key (as the offline IAM check evaluates it)."""

from __future__ import annotations

import json

import boto3
import pytest

from pcam_local.iam_needs import Need
from pcam_local.iam_policies import allowing_statement
from pcam_local.moto_server import MotoServer, client_environment
from pcam_local.stack import STACK_NAME, deploy
from pcam_local.template import project_root
from pcam_ops.cli import main
from pcam_pipeline.core.labs import lab_policy
from tests.integration.conftest import INTEGRATION

pytestmark = INTEGRATION


@pytest.fixture(scope="module")
def kms_deployment(tmp_path_factory):
    server = MotoServer(log_path=tmp_path_factory.mktemp("labs") / "moto.log").start()
    try:
        yield server.url, deploy(project_root(), server.url, {"BucketEncryption": "SSE-KMS"})
    finally:
        server.stop()


def pcam(capsys, *words: str) -> tuple[int, str]:
    code = main([*words, "--stack", STACK_NAME])
    return code, capsys.readouterr().out


def default_policy(iam, arn: str) -> dict:
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    return document if isinstance(document, dict) else json.loads(document)


def test_a_labs_policy_from_before_sse_kms_is_found_stale_and_updated_then_removed(kms_deployment, monkeypatch, capsys):
    endpoint, deployed = kms_deployment
    for name, value in client_environment(endpoint).items():
        monkeypatch.setenv(name, value)
    iam = boto3.client("iam")
    bucket_arn = f"arn:aws:s3:::{deployed.bucket}"
    # What `pcam lab add` wrote while the bucket was SSE-S3: no statement for the key.
    written = json.dumps(lab_policy(bucket_arn, "lab-old"))
    before = iam.create_policy(PolicyName=f"{STACK_NAME}-lab-lab-old", PolicyDocument=written)["Policy"]["Arn"]
    assert pcam(capsys, "lab", "add", "lab-new", "--principal", "arn:aws:iam::210987654321:root")[0] == 0

    code, out = pcam(capsys, "lab", "list", "--json")
    listed = {access["lab"]: access for access in json.loads(out)}
    assert code == 0 and listed.keys() == {"lab-old", "lab-new"}
    assert listed["lab-new"]["policy"] == "current" and listed["lab-new"]["role_arn"].endswith("-lab-lab-new")
    assert listed["lab-old"]["policy"] == "stale: run `pcam lab update lab-old`"
    code, out = pcam(capsys, "status", "--json")
    assert any("lab lab-old's IAM policy" in problem for problem in json.loads(out)["problems"])

    key_arn = deployed.outputs["DataKeyArn"]
    decrypt = Need("kms:Decrypt", key_arn)
    assert allowing_statement(default_policy(iam, before)["Statement"], decrypt) is None, "cannot read its results"
    assert pcam(capsys, "lab", "update", "lab-old") == (0, "lab-old: policy updated to this deployment's\n")
    assert allowing_statement(default_policy(iam, before)["Statement"], decrypt) is not None
    assert pcam(capsys, "lab", "update", "lab-old")[1] == "lab-old: policy already current\n"
    assert all(access["policy"] == "current" for access in json.loads(pcam(capsys, "lab", "list", "--json")[1]))

    assert pcam(capsys, "lab", "add", "lab-new")[0] == 0, "adding again changes nothing"
    assert pcam(capsys, "lab", "remove", "lab-new")[0] == 0
    assert [access["lab"] for access in json.loads(pcam(capsys, "lab", "list", "--json")[1])] == ["lab-old"]
    assert not [r for r in iam.list_roles()["Roles"] if r["RoleName"].endswith("-lab-lab-new")]

"""`pcam lab add | list | update | remove` on a deployment rehearsed on moto under SSE-KMS: a lab's policy written
before the switch to SSE-KMS is reported stale by `pcam lab list` and `pcam status`, and `pcam lab update`
makes it the template's, which lets the lab use the bucket's key (as the offline IAM check evaluates it)."""

from __future__ import annotations

import json

import boto3
import pytest
from moto.events.models import EventPattern

from pcam_local.cross_account import ReadPath, list_denials, read_denials
from pcam_local.iam_needs import Need
from pcam_local.iam_policies import TemplateResolver, allowing_statement
from pcam_local.moto_server import MotoServer, client_environment
from pcam_local.stack import STACK_NAME, deploy
from pcam_local.template import project_root
from pcam_ops.cli import main
from pcam_ops.exit_codes import USAGE
from pcam_ops.subscriber_documents import subscriber_name
from pcam_ops.subscribers import s3_control
from pcam_pipeline.aws.events import SOURCE
from pcam_pipeline.core.keys import prediction_key
from pcam_pipeline.core.labs import in_lab, lab_policy
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


def lab_event(lab: str) -> dict:
    """An event as EventBridge delivers it: a lab's slide scored."""
    return ({
        "id": "1", "detail-type": "Slide Scored v2", "source": SOURCE, "account": "123456789012",
        "time": "2026-12-07T10:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {"schema_version": 2, "lab": lab, "slide_id": in_lab(lab, "s1")}})  # fmt: skip


def test_a_subscriber_account_reads_its_labs_results_and_gets_their_events_and_nothing_else(
    kms_deployment, monkeypatch, capsys
):
    endpoint, deployed = kms_deployment
    for name, value in client_environment(endpoint).items():
        monkeypatch.setenv(name, value)
    subscriber, stranger = "210987654321", "345678901234"
    bus = f"arn:aws:events:us-east-1:{subscriber}:event-bus/lims"
    code, out = pcam(capsys, "subscriber", "add", subscriber, "--labs", "lab-a", "--bus", bus)
    assert code == 0, out
    (listed,) = json.loads(pcam(capsys, "subscriber", "list", "--json")[1])
    assert listed["account"] == subscriber and listed["labs"] == ["lab-a"] and listed["bus"] == bus
    assert listed["key_arn"] == deployed.outputs["DataKeyArn"], "its own policy must allow kms:Decrypt on it"
    assert listed["key_grant"] and listed["read_as"].endswith("-s3alias/predictions/labs/<lab>/")

    # As S3 and KMS decide a GET by a role of the subscriber's account through its access point.
    name = subscriber_name(STACK_NAME, subscriber)
    resolver = TemplateResolver(deployed.template, deployed.physical_ids, deployed.parameters)
    bucket_policy = resolver.resolve(deployed.template["Resources"]["DataBucketPolicy"]["Properties"]["PolicyDocument"])
    point_policy = json.loads(s3_control().get_access_point_policy(AccountId="123456789012", Name=name)["Policy"])

    def read_path() -> ReadPath:
        grants = tuple(boto3.client("kms").list_grants(KeyId=deployed.outputs["DataKeyArn"])["Grants"])
        return ReadPath(deployed.bucket, bucket_policy, listed["access_point_arn"], point_policy,
                        deployed.outputs["DataKeyArn"], grants)  # fmt: skip

    reader = f"arn:aws:iam::{subscriber}:role/lims-reader"
    its_csv, other_labs_csv = prediction_key(in_lab("lab-a", "s1"), "csv"), prediction_key(in_lab("lab-b", "s1"), "csv")
    assert read_denials(read_path(), reader, its_csv) == []
    assert list_denials(read_path(), reader, "predictions/labs/lab-a/") == []
    assert read_denials(read_path(), reader, other_labs_csv) == [
        "the access point's policy does not allow s3:GetObject on it"
    ]
    assert read_denials(read_path(), reader, "models/m1/model.tar.gz")
    assert list_denials(read_path(), reader, "predictions/labs/lab-b/")
    assert read_denials(read_path(), f"arn:aws:iam::{stranger}:root", its_csv), "another account reads nothing"

    events = boto3.client("events")
    pattern = events.describe_rule(Name=name, EventBusName=deployed.outputs["PipelineBusName"])["EventPattern"]
    assert EventPattern.load(pattern).matches_event(lab_event("lab-a")), "moto: TestEventPattern not implemented"
    assert not EventPattern.load(pattern).matches_event(lab_event("lab-b"))

    assert pcam(capsys, "subscriber", "add", subscriber, "--labs", "lab-a,lab-c")[0] == 0, "again: labs replaced"
    (listed,) = json.loads(pcam(capsys, "subscriber", "list", "--json")[1])
    assert listed["labs"] == ["lab-a", "lab-c"] and listed["bus"] is None, "no --bus: no rule"
    assert len([g for g in read_path().grants if g.get("Name") == name]) == 1, "one grant, however often added"

    assert pcam(capsys, "subscriber", "remove", subscriber)[0] == 0
    assert json.loads(pcam(capsys, "subscriber", "list", "--json")[1]) == []
    assert "no grant on the data key lets its account decrypt" in read_denials(read_path(), reader, its_csv)


@pytest.mark.parametrize(
    "words, said",
    [
        (["2109876543", "--labs", "lab-a"], "the subscriber is not an AWS account id"),
        (["210987654321", "--labs", "Lab A"], "the lab's folder name is not a lab name"),
        (["210987654321", "--labs", "lab-a", "--bus", "arn:aws:events:us-east-1:345678901234:event-bus/x"],
         "--bus is not an event bus of the subscriber's account"),
    ],
)  # fmt: skip
def test_a_subscriber_with_a_bad_account_lab_or_bus_is_refused_in_plain_words(
    kms_deployment, monkeypatch, capsys, words, said
):
    for name, value in client_environment(kms_deployment[0]).items():
        monkeypatch.setenv(name, value)
    assert main(["subscriber", "add", *words, "--stack", STACK_NAME]) == USAGE
    assert said in capsys.readouterr().err

"""Operator commands against the local stack: `pcam status` and `pcam redrive`."""

import json
from pathlib import Path

import numpy as np

from pcam_ops.cli import main
from pcam_synth.synth import synth_split
from tests.integration.conftest import INTEGRATION, h5_bytes

pytestmark = INTEGRATION

EVENTS = Path(__file__).parents[2] / "events"


def use_stack(stack, monkeypatch):
    for name, value in stack.environment().items():
        monkeypatch.setenv(name, value)


def object_created(bucket: str, key: str, version: str) -> str:
    event = json.loads((EVENTS / "s3-object-created-eventbridge.json").read_text())
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"].update(key=key, **{"version-id": version})
    return json.dumps(event)


def test_status_lists_files_datasets_and_problems_as_json(pipeline, monkeypatch, capsys):
    x, y = synth_split(12, np.random.default_rng(3))
    pipeline.drop_split("status-check", "train", x, y)
    pipeline.drop("incoming/slides/not-hdf5.h5", b"plain text")
    pipeline.settle()
    use_stack(pipeline.stack, monkeypatch)

    code = main(["status", "--stack", "pcam-local", "--json"])

    status = json.loads(capsys.readouterr().out)
    assert code == 1, "a quarantined file is a problem operators should see"
    assert any(f["key"] == "incoming/slides/not-hdf5.h5" and f["status"] == "quarantined" for f in status["files"])
    ready = {r["name"]: r for r in status["ready"]}
    assert ready["status-check/train"]["patch_count"] == 12
    assert any("not-hdf5.h5" in problem for problem in status["problems"])


def test_redrive_moves_dead_lettered_messages_back_to_their_queue(pipeline, monkeypatch, capsys):
    stack = pipeline.stack
    key = "incoming/slides/redriven.h5"
    pipeline.drop(key, h5_bytes(x=synth_split(4, np.random.default_rng(4))[0]))
    pipeline.settle()
    version = stack.s3.head_object(Bucket=stack.bucket, Key=key)["VersionId"]
    dead_letter_url = stack.deployed.dead_letter_queues["IngestDeadLetterQueue"]
    stack.sqs.send_message(QueueUrl=dead_letter_url, MessageBody=object_created(stack.bucket, key, version))
    use_stack(stack, monkeypatch)

    assert main(["redrive", "--stack", "pcam-local", "--queue", "Ingset"]) == 2, "a mistyped queue is an error"
    assert "IngestDeadLetterQueue" in capsys.readouterr().err, "the error lists the queues there are"
    assert main(["redrive", "--stack", "pcam-local", "--queue", "Ingest", "--dry-run"]) == 0
    assert "IngestDeadLetterQueue: 1 message(s) would move back" in capsys.readouterr().out
    assert len(stack.dead_letters()["IngestDeadLetterQueue"]) == 1, "a dry run moves nothing"
    assert main(["redrive", "--stack", "pcam-local", "--queue", "Ingest"]) == 0
    assert "IngestDeadLetterQueue: 1 message(s) moved back" in capsys.readouterr().out
    pipeline.settle()
    assert not stack.dead_letters()["IngestDeadLetterQueue"]
    assert pipeline.file_record(key)["status"] == "converted", "the redriven event was handled (idempotently)"


def test_an_operator_adds_a_lab_in_one_step_and_its_policy_confines_it_to_its_folders(pipeline, monkeypatch, capsys):
    import boto3

    use_stack(pipeline.stack, monkeypatch)
    lab_account = "arn:aws:iam::210987654321:root"
    assert main(["lab", "add", "lab-a", "--stack", "pcam-local", "--principal", lab_account]) == 0
    assert main(["lab", "add", "lab-a", "--stack", "pcam-local", "--principal", lab_account]) == 0, "repeatable"
    printed = capsys.readouterr().out
    assert "incoming/labs/lab-a/" in printed and "predictions/labs/lab-a/" in printed
    iam = boto3.client("iam")
    role = iam.get_role(RoleName="pcam-local-lab-lab-a")["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["AWS"] == lab_account
    (attached,) = iam.list_attached_role_policies(RoleName="pcam-local-lab-lab-a")["AttachedPolicies"]
    version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=version)["PolicyVersion"]["Document"]
    document = json.loads(document) if isinstance(document, str) else document
    resources = json.dumps(document)
    assert "incoming/labs/lab-a/*" in resources and "lab-b" not in resources and "incoming/slides" not in resources
    assert main(["lab", "add", "Lab_A", "--stack", "pcam-local"]) == 2
    assert "not a lab name" in capsys.readouterr().err

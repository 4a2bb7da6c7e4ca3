"""Operator commands against the local stack: `pcam status` and `pcam redrive`."""

import json
from pathlib import Path

import numpy as np
import pytest

from pcam_ops.cli import main
from pcam_synth.synth import synth_split
from tests.integration.conftest import INTEGRATION
from tests.lab import h5_bytes

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


@pytest.fixture
def fresh_default_session():
    """`pcam` sets boto3's default session to the region and profile it resolved; other tests start afresh."""
    import boto3

    yield
    boto3.DEFAULT_SESSION = None


def test_operators_pick_the_deployment_as_sam_does_with_config_env_region_and_profile(
    pipeline, monkeypatch, capsys, tmp_path, fresh_default_session
):
    use_stack(pipeline.stack, monkeypatch)
    config = tmp_path / "samconfig.toml"
    config.write_text(
        'version = 0.1\n[local.global.parameters]\nstack_name = "pcam-local"\n'
        '[local.deploy.parameters]\nregion = "us-east-1"\n'
    )
    monkeypatch.chdir(tmp_path)
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))  # nor a region in ~/.aws/config

    assert main(["models", "--json"]) == 2, "no region anywhere is a usage error"
    assert "no AWS region: pass --region" in capsys.readouterr().err
    assert main(["models", "--json", "--config-env", "local"]) == 0, "stack and region from samconfig.toml"
    assert "models" in json.loads(capsys.readouterr().out)
    assert main(["models", "--json", "--stack", "pcam-local", "--region", "us-east-1"]) == 0
    capsys.readouterr()
    assert main(["models", "--config-env", "prod"]) == 2
    assert "samconfig.toml has no environment 'prod' (it has local)" in capsys.readouterr().err
    assert main(["models", "--config-env", "local", "--profile", "no-such-profile"]) == 2
    assert "no AWS profile 'no-such-profile'" in capsys.readouterr().err
    assert main(["models", "--config-env", "local", "--stack", "not-deployed"]) == 3, "an unreachable stack"
    capsys.readouterr()


def test_status_answers_for_one_file_one_slide_or_what_changed_since(pipeline, monkeypatch, capsys):
    x = synth_split(6, np.random.default_rng(5))[0]
    coords = np.stack([np.arange(6) * 96, np.zeros(6, int)], axis=1)
    pipeline.drop("incoming/slides/asked-about.h5", h5_bytes(x=x, coords=coords))
    pipeline.drop("incoming/slides/other.h5", b"not hdf5")
    pipeline.settle()
    use_stack(pipeline.stack, monkeypatch)

    assert main(["status", "--stack", "pcam-local", "--json", "--slide", "asked-about"]) == 0, "no problem of its own"
    about = json.loads(capsys.readouterr().out)
    assert [f["key"] for f in about["files"]] == ["incoming/slides/asked-about.h5"]
    assert [r["name"] for r in about["ready"]] == ["asked-about"]
    assert main(["status", "--stack", "pcam-local", "--json", "--file", "incoming/slides/other.h5"]) == 1
    other = json.loads(capsys.readouterr().out)
    assert [f["key"] for f in other["files"]] == ["incoming/slides/other.h5"] and other["files"][0]["reason"]
    main(["status", "--stack", "pcam-local", "--json", "--since", "2999-01-01"])
    assert json.loads(capsys.readouterr().out)["files"] == [], "nothing changed in the future"
    assert main(["status", "--stack", "pcam-local", "--since", "last tuesday"]) == 2
    assert "--since is not a time" in capsys.readouterr().err


def test_pcam_says_its_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out.startswith("pcam 0.")


def test_a_consumer_that_missed_events_gets_them_again_from_the_archive(pipeline, monkeypatch, capsys):
    """The local tap is a consumer's rule on the bus; the pipeline's own rules never see a replay."""
    from datetime import UTC, datetime, timedelta

    before = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
    x = synth_split(5, np.random.default_rng(9))[0]
    pipeline.drop("incoming/slides/replayed.h5", h5_bytes(x=x))
    pipeline.settle()
    (ready,) = pipeline.events_for("Slide Ready", slide_id="replayed")
    use_stack(pipeline.stack, monkeypatch)
    flow_runs = len([i for i in pipeline.stack.runtime.invocations if i.function == "SageMakerFlowFunction"])

    assert main(["replay", "--stack", "pcam-local", "--since", before, "--rule", "not-a-rule"]) == 2
    assert "no consumer's rule 'not-a-rule'" in capsys.readouterr().err
    assert main(["replay", "--stack", "pcam-local", "--since", before]) == 0
    assert "pcam-local-events-tap" in capsys.readouterr().out, "every consumer's rule, and only those"
    pipeline.settle()

    again = [e for e in pipeline.events_for("Slide Ready", slide_id="replayed") if e.get("replay-name")]
    assert [e["detail"] for e in again] == [ready["detail"]], "the same event once more, marked as a replay"
    flow_now = len([i for i in pipeline.stack.runtime.invocations if i.function == "SageMakerFlowFunction"])
    assert flow_now - flow_runs <= 3, "the flow's own rule got no replay (only its scheduled ticks ran)"

"""Contract tests of upstream moto (in-process, unpatched): each patch in pcam_local/moto_patches.py rests on
something moto does, and a moto release that changes it fails here, naming the patch to revisit, instead of
a scenario failing somewhere in the local stack. The patches' own effects are tested through the local stack
(tests/integration/test_local_s3.py, test_a_year.py, test_operations.py …)."""

import gc
import inspect
import json
import sys

import boto3
import pytest
from moto import mock_aws

from pcam_local import moto_patches

REGION = "us-east-1"


def test_the_local_stack_refuses_a_moto_its_patches_were_not_written_for():
    moto_patches.check_moto_version()  # the pinned one
    with pytest.raises(moto_patches.UnexpectedMoto, match="moto 5.2.5 has them, and moto 5.3.0 is installed"):
        moto_patches.check_moto_version("5.3.0")


def test_gc_threshold_python_313_collects_cycles_less_often_than_312():
    assert sys.version_info[:2] == (3, 13)
    assert gc.get_threshold()[0] == 2000, "Python's default changed: gc_threshold may no longer be needed"


@mock_aws
def test_scheduled_rules_match_no_events_upstream_sends_every_event_to_a_scheduled_rule():
    events, sqs = boto3.client("events", REGION), boto3.client("sqs", REGION)
    queue = sqs.create_queue(QueueName="ticks")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="tick", ScheduleExpression="rate(1 minute)")
    events.put_targets(Rule="tick", Targets=[{"Id": "q", "Arn": arn}])
    events.put_events(Entries=[{"Source": "lab", "DetailType": "anything", "Detail": "{}"}])
    received = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages", [])
    assert received, "moto no longer matches a scheduled rule to events: drop scheduled_rules_match_no_events"


@mock_aws
def test_s3_sequencers_increase_upstream_gives_every_s3_event_one_sequencer():
    from moto.s3 import notifications

    from pcam_local.moto_patches import MOTO_S3_SEQUENCER

    assert MOTO_S3_SEQUENCER in inspect.getsource(notifications._send_event_bridge_message), (
        "moto's S3 events no longer share one sequencer: revisit s3_sequencers_increase"
    )


@mock_aws
def test_archives_and_replays_upstream_replays_ignore_the_time_window():
    events, sqs = boto3.client("events", REGION), boto3.client("sqs", REGION)
    queue = sqs.create_queue(QueueName="replayed")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = events.describe_event_bus()["Arn"]
    archive = events.create_archive(ArchiveName="all", EventSourceArn=bus)["ArchiveArn"]
    events.put_rule(Name="labs", EventPattern=json.dumps({"source": ["lab"]}))
    events.put_targets(Rule="labs", Targets=[{"Id": "q", "Arn": arn}])
    events.put_events(Entries=[{"Source": "lab", "DetailType": "dropped", "Detail": "{}"}])
    sqs.purge_queue(QueueUrl=queue)
    from datetime import UTC, datetime

    long_ago = datetime(2001, 1, 1, tzinfo=UTC)
    events.start_replay(ReplayName="old", EventSourceArn=archive, EventStartTime=long_ago,
                        EventEndTime=datetime(2001, 1, 2, tzinfo=UTC), Destination={"Arn": bus})  # fmt: skip
    replayed = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages", [])
    assert replayed, "moto's replays now keep to their window: revisit archives_and_replays_as_eventbridge_keeps_them"


def test_models_are_not_tracked_upstream_keeps_every_model_object():
    from moto.core.common_models import BaseModel

    class Probe(BaseModel):
        pass

    Probe()
    assert len(Probe.instances_tracked) == 1, "moto no longer tracks model objects: drop models_are_not_tracked"


def test_the_s3_seams_the_patches_replace_still_exist():
    """s3_writes, s3_bodies and s3_clock replace these by name; a rename would silently undo a patch."""
    from moto.s3 import models, notifications
    from moto.s3.models import FakeKey, FakeMultipart, S3Backend
    from moto.s3.responses import S3Response

    assert callable(models.utcnow) and callable(notifications.send_event)
    assert callable(S3Backend.complete_multipart_upload) and callable(S3Response.put_object_tagging)
    assert callable(S3Response.list_multipart_uploads) and callable(FakeMultipart.__init__)
    with mock_aws():
        s3 = boto3.client("s3", REGION)
        s3.create_bucket(Bucket="seams")
        s3.put_object(Bucket="seams", Key="k", Body=b"small")
        key = models.s3_backends["123456789012"]["global"].get_object("seams", "k")
        assert isinstance(key, FakeKey) and hasattr(key, "_value_buffer"), "s3_bodies replaces FakeKey._value_buffer"


@mock_aws
def test_rules_publish_to_sns_topics_upstream_refuses_a_rules_sns_target():
    events, sns = boto3.client("events", REGION), boto3.client("sns", REGION)
    topic = sns.create_topic(Name="notices")["TopicArn"]
    events.put_rule(Name="notices", EventPattern=json.dumps({"source": ["lab"]}))
    events.put_targets(Rule="notices", Targets=[{"Id": "t", "Arn": topic}])
    with pytest.raises(NotImplementedError):  # the server answers 500: moto learned SNS targets? drop the patch
        events.put_events(Entries=[{"Source": "lab", "DetailType": "anything", "Detail": "{}"}])


def test_table_streams_upstream_run_a_streams_lambda_mappings_on_every_write():
    import inspect

    from moto.dynamodb.models.table import StreamShard

    source = inspect.getsource(StreamShard.add)
    assert "lambda_event_source_mappings" in source and "send_dynamodb_items" in source, (
        "moto no longer invokes a stream's mappings itself: table_streams_are_read_by_the_local_runtime may go"
    )

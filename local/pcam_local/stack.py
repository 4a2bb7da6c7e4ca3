"""template.yaml itself deployed into the local AWS (``moto_server``), as `sam deploy` would: what the local
runtime then needs to run it (functions, queue mappings, dead-letter queues, the events tap)."""

from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from pcam_local import REGION
from pcam_local.template import check_rules, lifecycle_rules, load_template, translate

STACK_NAME = "pcam-local"
ARTIFACTS_BUCKET = "pcam-local-artifacts"
EVENTS_TAP_QUEUE = "pcam-local-events-tap"


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    timeout: int
    memory_mb: int


# Without a ScalingConfig, Lambda scales an SQS source up to 1,000 at once; locally that is a few processes.
UNSCALED_CONCURRENCY = 4


@dataclass
class QueueMapping:
    function: FunctionSpec
    queue_url: str
    batch_size: int
    report_batch_item_failures: bool
    maximum_concurrency: int  # the mapping's ScalingConfig: how many invocations Lambda runs at once


@dataclass
class DeployedStack:
    outputs: dict[str, str]
    functions: dict[str, FunctionSpec]
    mappings: list[QueueMapping]
    streams: list[Any] = field(default_factory=list)  # stream_poller.StreamMapping
    dead_letter_queues: dict[str, str] = field(default_factory=dict)
    events_tap_url: str = ""
    # For the IAM sufficiency check: the translated template, its parameters and each resource's physical id.
    template: dict = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    physical_ids: dict[str, str] = field(default_factory=dict)

    @property
    def bucket(self) -> str:
        return self.outputs["DataBucketName"]


def _zip_directory(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(directory))
    return buffer.getvalue()


def package_template(template: dict, root: Path, s3) -> tuple[dict, dict[str, Path]]:
    """Like `sam package`: upload each code folder and point the template at it. Returns code folders."""
    s3.create_bucket(Bucket=ARTIFACTS_BUCKET)
    code_dirs: dict[str, Path] = {}
    for logical_id, resource in template["Resources"].items():
        prop = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}.get(
            resource["Type"]
        )
        if prop is None:
            continue
        directory = root / resource["Properties"][prop]
        key = f"{logical_id}.zip"
        s3.put_object(Bucket=ARTIFACTS_BUCKET, Key=key, Body=_zip_directory(directory))
        resource["Properties"][prop] = f"s3://{ARTIFACTS_BUCKET}/{key}"
        code_dirs[logical_id] = directory
    return template, code_dirs


def deploy(root: Path, endpoint: str, parameters: dict[str, str] | None = None) -> DeployedStack:
    """Deploy template.yaml into the local AWS and return what the runtime needs to run it."""
    session = boto3.Session(region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local")
    clients = {
        name: session.client(name, endpoint_url=endpoint)
        for name in ("s3", "cloudformation", "lambda", "sqs", "events")
    }
    parameters = parameters or {}
    template, code_dirs = package_template(load_template(root / "template.yaml"), root, clients["s3"])
    check_rules(template, parameters)
    cfn_template = translate(template, parameters)
    cfn = clients["cloudformation"]
    # moto 5.2.5 splits a CommaDelimitedList parameter's given value but not its default: give every one.
    lists = {
        name: spec["Default"]
        for name, spec in template["Parameters"].items()
        if spec.get("Type") == "CommaDelimitedList" and "Default" in spec
    }
    cfn.create_stack(
        StackName=STACK_NAME,
        TemplateBody=json.dumps(cfn_template),
        Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in {**lists, **parameters}.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    stack = _wait_for_stack(cfn)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    resources = {
        r["LogicalResourceId"]: r
        for r in cfn.describe_stack_resources(StackName=STACK_NAME)["StackResources"]
        if "LogicalResourceId" in r
    }
    values = {name: str(parameters.get(name, spec.get("Default", ""))) for name, spec in template["Parameters"].items()}
    _apply_bucket_settings_moto_skips(
        clients["s3"], outputs["DataBucketName"], template["Resources"]["DataBucket"]["Properties"], values
    )
    functions = _functions(clients["lambda"], resources, code_dirs)
    mappings = _mappings(clients["lambda"], clients["sqs"], functions)
    from pcam_local.stream_poller import stream_mappings  # it runs functions: imported where it is used

    streams = stream_mappings(clients["lambda"], functions)
    dead_letters = {
        logical: r["PhysicalResourceId"]
        for logical, r in resources.items()
        if r["ResourceType"] == "AWS::SQS::Queue" and "DeadLetter" in logical
    }
    deployed = DeployedStack(
        outputs=outputs,
        functions=functions,
        mappings=mappings,
        streams=streams,
        dead_letter_queues=dead_letters,
        template=cfn_template,
        parameters=dict(parameters),
        physical_ids=_physical_ids(resources, cfn_template, outputs),
    )
    deployed.events_tap_url = _tap_pipeline_events(clients["sqs"], clients["events"], outputs["PipelineBusName"])
    return deployed


def _physical_ids(resources: dict, template: dict, outputs: dict[str, str]) -> dict[str, str]:
    """Each resource's physical id; where moto reports none (the event bus), the stack output naming it."""
    physical = {logical: r.get("PhysicalResourceId") for logical, r in resources.items() if r.get("PhysicalResourceId")}
    for name, output in template.get("Outputs", {}).items():
        value = output["Value"] if isinstance(output["Value"], dict) else {}
        attribute = value.get("Fn::GetAtt") or [None]
        target = value.get("Ref") or (attribute.split(".")[0] if isinstance(attribute, str) else attribute[0])
        if target and target not in physical and name in outputs:
            physical[target] = outputs[name]
    return physical


def _apply_bucket_settings_moto_skips(s3, bucket: str, properties: dict, parameters: dict[str, str]) -> None:
    """moto's CloudFormation ignores these bucket properties; apply them from the template as S3 would."""
    if properties.get("VersioningConfiguration", {}).get("Status") == "Enabled":
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    if properties.get("NotificationConfiguration", {}).get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
    if "PublicAccessBlockConfiguration" in properties:
        s3.put_public_access_block(
            Bucket=bucket, PublicAccessBlockConfiguration=properties["PublicAccessBlockConfiguration"]
        )
    if "LifecycleConfiguration" in properties:  # acted on only as the local clock moves (LocalClock)
        rules = lifecycle_rules(properties["LifecycleConfiguration"]["Rules"], parameters)
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})


def _wait_for_stack(cfn) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        stack = cfn.describe_stacks(StackName=STACK_NAME)["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS"):
            break
        time.sleep(0.2)
    if stack["StackStatus"] != "CREATE_COMPLETE":
        failures = [
            f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
            for e in cfn.describe_stack_events(StackName=STACK_NAME)["StackEvents"]
            if "FAILED" in e.get("ResourceStatus", "")
        ]
        raise RuntimeError(f"local deploy ended in {stack['StackStatus']}: {'; '.join(failures)}")
    return stack


def _functions(lambda_client, resources: dict, code_dirs: dict[str, Path]) -> dict[str, FunctionSpec]:
    functions = {}
    for logical_id, resource in resources.items():
        if resource["ResourceType"] != "AWS::Lambda::Function":
            continue
        config = lambda_client.get_function_configuration(FunctionName=resource["PhysicalResourceId"])
        functions[config["FunctionArn"]] = FunctionSpec(
            logical_id=logical_id,
            name=config["FunctionName"],
            code_dir=code_dirs[logical_id],
            handler=config["Handler"],
            environment={k: str(v) for k, v in config.get("Environment", {}).get("Variables", {}).items()},
            timeout=int(config.get("Timeout", 3)),
            memory_mb=int(config.get("MemorySize", 128)),
        )
    return functions


def _mappings(lambda_client, sqs, functions: dict[str, FunctionSpec]) -> list[QueueMapping]:
    mappings = []
    for mapping in lambda_client.list_event_source_mappings()["EventSourceMappings"]:
        if ":sqs:" not in mapping["EventSourceArn"]:
            continue
        # The local runtime is the poller. moto's own would receive the messages and try to run
        # the function in Docker, using up their deliveries.
        lambda_client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
        queue_name = mapping["EventSourceArn"].rsplit(":", 1)[-1]
        mappings.append(
            QueueMapping(
                function=functions[mapping["FunctionArn"]],
                queue_url=sqs.get_queue_url(QueueName=queue_name)["QueueUrl"],
                batch_size=int(mapping.get("BatchSize", 10)),
                report_batch_item_failures="ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", []),
                maximum_concurrency=int(
                    (mapping.get("ScalingConfig") or {}).get("MaximumConcurrency", UNSCALED_CONCURRENCY)
                ),
            )
        )
    return mappings


def _tap_pipeline_events(sqs, events, bus_name: str) -> str:
    """A local downstream consumer: every event the pipeline announces is copied to a queue we can read."""
    url = sqs.create_queue(QueueName=EVENTS_TAP_QUEUE)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="pcam-local-events-tap", EventBusName=bus_name, EventPattern=json.dumps({"source": ["pcam.pipeline"]})
    )
    events.put_targets(Rule="pcam-local-events-tap", EventBusName=bus_name, Targets=[{"Id": "tap", "Arn": arn}])
    return url

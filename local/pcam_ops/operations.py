"""Operator commands against a deployed stack, in AWS or on the local stack (boto3's usual settings)."""

from __future__ import annotations

import getpass
import time

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from pcam_pipeline.aws.events import EventPublisher
from pcam_pipeline.models.promotion import PromotedModels
from pcam_pipeline.state import StateStore, now_iso


class StackNotFound(Exception):
    pass


class UnknownQueue(ValueError):
    """A --queue naming no dead-letter queue of the stack: a usage error."""


def _describe_stack(stack_name: str) -> dict:
    try:
        return boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    except (ClientError, BotoCoreError) as exc:
        raise StackNotFound(f"cannot read stack {stack_name!r}: {exc}") from exc


def stack_outputs(stack_name: str) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in _describe_stack(stack_name).get("Outputs", [])}


def stack_parameters(stack_name: str) -> dict[str, str]:
    """The parameters the stack was deployed with (those left at their default may be absent)."""
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in _describe_stack(stack_name).get("Parameters", [])}


def model_registry(stack_name: str) -> PromotedModels:
    outputs = stack_outputs(stack_name)
    return PromotedModels(StateStore(outputs["StateTableName"]), EventPublisher(outputs["PipelineBusName"]))


def who_is_calling() -> str:
    """The caller's IAM identity, recorded with a manual promotion or rollback."""
    try:
        return boto3.client("sts").get_caller_identity()["Arn"]
    except (ClientError, BotoCoreError):
        return getpass.getuser()


class DeployedStackView:
    """What operators read and fix in a deployed stack: its state records and dead-letter queues."""

    def __init__(self, stack_name: str):
        self.outputs = stack_outputs(stack_name)
        self._sqs = boto3.client("sqs")

    def records(self) -> list[dict]:
        return StateStore(self.outputs["StateTableName"]).scan_all()

    def dead_letter_queues(self) -> dict[str, str]:
        """Output name without "Url" → queue URL, for every dead-letter queue of the stack."""
        return {
            name.removesuffix("Url"): url for name, url in self.outputs.items() if name.endswith("DeadLetterQueueUrl")
        }

    def dead_letter_counts(self) -> dict[str, int]:
        counts = {}
        for name, url in self.dead_letter_queues().items():
            attributes = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
            counts[name] = int(attributes["Attributes"]["ApproximateNumberOfMessages"])
        return counts

    def redrive(self, only: str | None = None, dry_run: bool = False) -> dict[str, int]:
        """Move every dead-lettered message back to the queue it came from; returns how many per queue (with
        ``dry_run``, how many would move). ``only`` must name a dead-letter queue, in part."""
        queues = {name: url for name, url in self.dead_letter_queues().items() if not only or only in name}
        if not queues:
            known = ", ".join(sorted(self.dead_letter_queues()))
            raise UnknownQueue(f"no dead-letter queue of this stack is named like {only!r}; they are: {known}")
        if dry_run:
            return {name: count for name, count in self.dead_letter_counts().items() if name in queues}
        moved = {}
        for name, url in queues.items():
            (source,) = self._sqs.list_dead_letter_source_queues(QueueUrl=url)["queueUrls"]
            moved[name] = self._move_all(url, source)
        return moved

    def _move_all(self, dead_letter_url: str, source_url: str) -> int:
        moved = 0
        while True:
            messages = self._sqs.receive_message(
                QueueUrl=dead_letter_url, MaxNumberOfMessages=10, VisibilityTimeout=120, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return moved
            entries = [{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(messages)]
            sent = self._sqs.send_message_batch(QueueUrl=source_url, Entries=entries)
            delivered = {entry["Id"] for entry in sent.get("Successful", [])}
            self._sqs.delete_message_batch(
                QueueUrl=dead_letter_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                    if str(i) in delivered
                ],
            )
            moved += len(delivered)
            if len(delivered) < len(messages):
                raise RuntimeError(f"could not send some messages back to {source_url}: {sent.get('Failed')}")


def rescore(
    stack_name: str, slide_ids: list[str] | None, model: str | None, by: str, dry_run: bool = False
) -> list[str]:
    """Queue slides (None: every scored slide) to be scored again; the deployment's scheduled tick starts
    their jobs within a minute. ``model``: a servable model, else the model current when the job starts."""
    from pcam_pipeline.core.statuses import SERVABLE_MODEL_STATUSES
    from pcam_pipeline.models.promotion import PromotionError

    state = StateStore(stack_outputs(stack_name)["StateTableName"])
    if model:
        record = state.model(model)
        if record is None or record.status not in SERVABLE_MODEL_STATUSES:
            raise PromotionError(f"{model} is not a model that can score slides (see `pcam models`)")
    targets = slide_ids if slide_ids is not None else [slide.slide_id for slide in state.scored_slides()]
    if dry_run:
        return [slide_id for slide_id in targets if (slide := state.slide(slide_id)) and slide.ready]
    request = f"by {by} at {now_iso()}"
    return [slide_id for slide_id in targets if state.queue_rescore(slide_id, request, model or "")]


def concurrency_headroom(stack_name: str) -> tuple[int, int] | None:
    """(the stack's SQS event sources' MaximumConcurrency summed, the account's unreserved Lambda concurrency);
    None where Lambda does not say. Past the account's, invocations are throttled and retried (not lost), but
    every function waits on the others."""
    try:
        resources = boto3.client("cloudformation").describe_stack_resources(StackName=stack_name)["StackResources"]
        functions = {r["PhysicalResourceId"] for r in resources if r.get("ResourceType") == "AWS::Lambda::Function"}
        lambda_client = boto3.client("lambda")
        mappings = [
            mapping
            for page in lambda_client.get_paginator("list_event_source_mappings").paginate()
            for mapping in page["EventSourceMappings"]
            if mapping["FunctionArn"].rsplit(":", 1)[-1] in functions
        ]
        limit = lambda_client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
    except (ClientError, BotoCoreError):
        return None
    # An SQS source runs up to its MaximumConcurrency; a DynamoDB stream one invocation per shard at a time
    # (ParallelizationFactor, default 1): counted as one shard, the state table's usual.
    caps = sum(
        int((m.get("ScalingConfig") or {}).get("MaximumConcurrency", 1000))
        if ":sqs:" in m["EventSourceArn"]
        else int(m.get("ParallelizationFactor") or 1)
        for m in mappings
    )
    return caps, int(limit)


class UnknownRule(ValueError):
    """A --rule naming no consumer's rule on the bus: a usage error."""


def replay(stack_name: str, since, until, rule: str | None = None, timeout: float = 900) -> tuple[str, list[str]]:
    """Send the archived events of [since, until] again to the consumers' rules on the pipeline's bus (every
    rule that is not the pipeline's own, or ``rule``): the replay's name and the rules it went to. Replayed
    events carry ``replay-name``; the pipeline's own functions never see them."""
    outputs = stack_outputs(stack_name)
    events = boto3.client("events")
    bus = events.describe_event_bus(Name=outputs["PipelineBusName"])
    own = {
        resource.get("PhysicalResourceId")
        for resource in boto3.client("cloudformation").describe_stack_resources(StackName=stack_name)["StackResources"]
    }
    rules = [
        found
        for page in events.get_paginator("list_rules").paginate(EventBusName=bus["Name"])
        for found in page["Rules"]
        if found["Name"] not in own and found["Arn"] not in own and not found.get("ManagedBy")
    ]
    if rule:
        rules = [found for found in rules if rule in (found["Name"], found["Arn"])]
    if not rules:
        raise UnknownRule(
            f"no consumer's rule {rule!r} on bus {bus['Name']}" if rule else f"no consumer's rule on bus {bus['Name']}"
        )
    name = f"pcam-replay-{now_iso().replace(':', '').replace('+', '-')}"[:64]
    events.start_replay(
        ReplayName=name,
        EventSourceArn=outputs["PipelineEventArchiveArn"],
        EventStartTime=since,
        EventEndTime=until,
        Destination={"Arn": bus["Arn"], "FilterArns": [found["Arn"] for found in rules]},
    )
    deadline = time.monotonic() + timeout
    while (state := events.describe_replay(ReplayName=name)["State"]) not in ("COMPLETED", "FAILED", "CANCELLED"):
        if time.monotonic() > deadline:
            break
        time.sleep(2)
    return f"{name} ({state})", [found["Name"] for found in rules]

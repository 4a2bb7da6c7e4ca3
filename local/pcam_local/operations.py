"""Operator commands against a deployed stack, in AWS or on the local stack (boto3's usual settings)."""

from __future__ import annotations

import getpass

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from pcam_pipeline.events import EventPublisher
from pcam_pipeline.promotion import ModelRegistry
from pcam_pipeline.state import StateStore


class StackNotFound(Exception):
    pass


def stack_outputs(stack_name: str) -> dict[str, str]:
    try:
        stack = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    except (ClientError, BotoCoreError) as exc:
        raise StackNotFound(f"cannot read stack {stack_name!r}: {exc}") from exc
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def model_registry(stack_name: str) -> ModelRegistry:
    outputs = stack_outputs(stack_name)
    return ModelRegistry(StateStore(outputs["StateTableName"]), EventPublisher(outputs["PipelineBusName"]))


def who_is_calling() -> str:
    """The caller's IAM identity, recorded with a manual promotion or rollback."""
    try:
        return boto3.client("sts").get_caller_identity()["Arn"]
    except (ClientError, BotoCoreError):
        return getpass.getuser()

"""What `pcam subscriber` writes for a subscriber account: names, the access point's policy, the events rule's
pattern and the role that sends them on. Pure."""

from __future__ import annotations

import re
from typing import Any

from pcam_pipeline.aws.events import SOURCE
from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.keys import PREDICTIONS, short_id
from pcam_pipeline.core.labs import LABS, check_lab_name

ACCOUNT_ID = re.compile(r"\d{12}")
BUS_ARN = re.compile(r"arn:aws[a-z-]*:events:[a-z0-9-]+:(\d{12}):event-bus/[A-Za-z0-9._\-/]+")
_LAB_OBJECTS = re.compile(rf"/object/{PREDICTIONS}{LABS}/([a-z0-9-]+)/\*$")
FORWARDING_POLICY = "PutEventsOnTheSubscribersBus"


def check_account(account: str) -> str:
    if not ACCOUNT_ID.fullmatch(account):
        raise InvalidInput("the subscriber is not an AWS account id", "12 digits", repr(account))
    return account


def check_bus(bus: str, account: str) -> str:
    found = BUS_ARN.fullmatch(bus)
    if not found or found.group(1) != account:
        raise InvalidInput("--bus is not an event bus of the subscriber's account",
                           f"arn:aws:events:<region>:{account}:event-bus/<name>", repr(bus))  # fmt: skip
    return bus


def subscriber_name(stack: str, account: str) -> str:
    """The subscriber's access point, grant and rule name: ``<stack>-sub-<account>`` in lower case, shortened with
    a hash where it would pass an access point's 50 characters (a stack name may have 128)."""
    name = f"{stack.lower()}-sub-{account}"
    return name if len(name) <= 50 else f"{stack.lower()[:16].rstrip('-')}-{short_id(stack)}-sub-{account}"


def forwarding_role_name(stack: str, account: str, region: str) -> str:
    """The role that sends the subscriber's events on. IAM names are account-wide, so the region is in it (one stack
    name may be deployed in two regions); hashed where it would pass IAM's 64 characters."""
    name = f"{subscriber_name(stack, account)}-{region}"
    return name if len(name) <= 64 else f"{stack.lower()[:8].rstrip('-')}-{short_id(stack + region)}-sub-{account}"


def access_point_policy(access_point_arn: str, account: str, labs: list[str]) -> dict[str, Any]:
    """Through this access point, ``account`` may get and list its labs' results and nothing else."""
    folders = [f"{PREDICTIONS}{LABS}/{check_lab_name(lab)}/" for lab in labs]
    principal = {"AWS": f"arn:aws:iam::{check_account(account)}:root"}
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadItsLabsResults", "Effect": "Allow", "Principal": principal,
         "Action": ["s3:GetObject", "s3:GetObjectVersion"],
         "Resource": [f"{access_point_arn}/object/{folder}*" for folder in folders]},
        {"Sid": "ListItsLabsResults", "Effect": "Allow", "Principal": principal, "Action": "s3:ListBucket",
         "Resource": access_point_arn, "Condition": {"StringLike": {"s3:prefix": [f"{f}*" for f in folders]}}},
    ]}  # fmt: skip


def labs_in(policy: dict[str, Any]) -> list[str]:
    """The labs an access point policy of ours lets its subscriber read."""
    resources = [r for s in policy.get("Statement", []) if s.get("Sid") == "ReadItsLabsResults" for r in s["Resource"]]
    return sorted(m.group(1) for r in resources if (m := _LAB_OBJECTS.search(r)))


def forwarding_pattern(labs: list[str]) -> dict[str, Any]:
    """Every event (each version) of these labs; another lab's, or the deployment's own, never match."""
    return {"source": [SOURCE], "detail": {"lab": sorted(labs)}}


def forwarding_trust(account: str, rule_arn: str) -> dict[str, Any]:
    """EventBridge may take the role, for this rule only (EventBridge User Guide: aws:SourceAccount, aws:SourceArn)."""
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "events.amazonaws.com"},
        "Condition": {"StringEquals": {"aws:SourceAccount": account, "aws:SourceArn": rule_arn}}}]}  # fmt: skip


def forwarding_permissions(bus: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": bus}]}

"""`pcam subscriber add | list | remove`: an integrator's AWS account reads the results of the labs it subscribes
to, and nothing else, and may get those labs' events only.

- **Read**: an S3 access point of this account on the data bucket, named for the subscriber. Its policy lets that
  account get and list ``predictions/labs/<lab>/`` of its labs. The bucket's policy delegates reads to this
  account's access points (template: ``ReadsThroughThisAccountsAccessPoints``), as the S3 User Guide recommends
  ("Delegating access control to access points"). A CloudFormation-owned bucket policy is not edited here: a stack
  update would write it back without the subscriber.
- **SSE-KMS**: a grant on the data key lets that account decrypt, only with the bucket's encryption context (the
  bucket has S3 Bucket Keys, whose context is the bucket's ARN).
- **Events** (``--bus``): a rule on the pipeline's bus matching its labs (``detail.lab``) sends their events to the
  subscriber's own event bus, with a role that may put events on that bus only. EventBridge's bus policies have no
  condition key for an event's ``detail`` (EventBridge User Guide, "Using IAM policy conditions"), so a subscriber
  given rules of its own (``SubscriberAccountIds``) sees every lab's events; one limited to labs gets this rule.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
from botocore.exceptions import ClientError

from pcam_ops.operations import stack_outputs, stack_parameters
from pcam_ops.subscriber_documents import (
    ACCOUNT_ID,
    FORWARDING_POLICY,
    access_point_policy,
    check_account,
    check_bus,
    forwarding_pattern,
    forwarding_permissions,
    forwarding_role_name,
    forwarding_trust,
    labs_in,
    subscriber_name,
)
from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.keys import PREDICTIONS
from pcam_pipeline.core.labs import LABS, check_lab_name

SUBSCRIBER_COMMANDS = {
    "add": ("let an AWS account read its labs' results (and, with --bus, get their events on its own bus); "
            "again: its labs and bus are replaced", "pcam subscriber add 210987654321 --labs lab-a,lab-b "
            "--bus arn:aws:events:eu-west-1:210987654321:event-bus/lims --config-env prod"),
    "list": ("every subscriber account, its labs, access point and event bus", "pcam subscriber list --json"),
    "remove": ("take back an account's access point, key grant and event rule", "pcam subscriber remove 210987654321"),
}  # fmt: skip


def s3_control():
    """S3 Control's client. Its endpoint starts with the account id (``<account>.s3-control.<region>…``); an
    endpoint override (``AWS_ENDPOINT_URL``: the local stack) has no such names, so requests go to it as given."""
    client = boto3.client("s3control")
    if os.environ.get("AWS_ENDPOINT_URL_S3_CONTROL") or os.environ.get("AWS_ENDPOINT_URL"):

        def without_account_label(request, **_) -> None:
            parts = urlsplit(request.url)
            request.url = urlunsplit(parts._replace(netloc=parts.netloc.split(".", 1)[1]))

        client.meta.events.register("before-send.s3-control", without_account_label)
    return client


@dataclass(frozen=True)
class Subscriber:
    account: str
    labs: list[str]
    access_point_arn: str
    alias: str
    key_arn: str | None  # under SSE-KMS: the subscriber's own policy must allow kms:Decrypt on it
    key_grant: str | None
    bus: str | None

    def to_json(self) -> dict[str, Any]:
        return {"account": self.account, "labs": self.labs, "access_point_arn": self.access_point_arn,
                "read_as": f"s3://{self.alias}/{PREDICTIONS}{LABS}/<lab>/", "key_arn": self.key_arn,
                "key_grant": self.key_grant, "bus": self.bus}  # fmt: skip


class SubscriberAdmin:
    def __init__(self, stack_name: str):
        self._stack = stack_name
        outputs = stack_outputs(stack_name)
        self._bucket, self._key = outputs["DataBucketName"], outputs.get("DataKeyArn", "")
        self._bus = outputs["PipelineBusName"]
        self._self_managed = stack_parameters(stack_name).get("SubscriberAccountIds", "")
        self._account = boto3.client("sts").get_caller_identity()["Account"]
        self._s3control, self._kms = s3_control(), boto3.client("kms")
        self._events, self._iam = boto3.client("events"), boto3.client("iam")
        self._region = self._events.meta.region_name

    def add(self, account: str, labs: list[str], bus: str | None = None) -> dict[str, Any]:
        """The account's access point to its labs' results, its key grant (SSE-KMS) and, for ``bus``, the rule
        sending its labs' events there. Again for the same account: its labs and bus are replaced."""
        name, labs = subscriber_name(self._stack, check_account(account)), sorted(set(map(check_lab_name, labs)))
        if not labs:
            raise InvalidInput("a subscriber needs labs", "--labs LAB[,LAB…]", "none")
        if bus:
            check_bus(bus, account)
        point = self._access_point(name)
        self._s3control.put_access_point_policy(
            AccountId=self._account, Name=name, Policy=json.dumps(access_point_policy(point, account, labs))
        )
        if self._key and not self._grant(name):  # a new grant may take up to 5 minutes to work (KMS: CreateGrant)
            self._kms.create_grant(KeyId=self._key, Name=name, GranteePrincipal=f"arn:aws:iam::{account}:root",
                                   Operations=["Decrypt"], Constraints={"EncryptionContextSubset": {
                                       "aws:s3:arn": f"arn:aws:s3:::{self._bucket}"}})  # fmt: skip
        self._forward(name, account, labs, bus) if bus else self._stop_forwarding(name, account)
        found = self._subscriber(name, account, labs).to_json()
        if bus:
            found["bus_policy"] = f"{bus} must allow events:PutEvents by account {self._account}"
        if account in self._self_managed:
            found["note"] = ("this account is also in SubscriberAccountIds: rules of its own on the pipeline's bus "
                             "see every lab's events")  # fmt: skip
        return found

    def list(self) -> list[Subscriber]:
        found, token = [], None
        while True:  # ListAccessPoints has no paginator in botocore
            page = self._s3control.list_access_points(AccountId=self._account, Bucket=self._bucket,
                                                      **({"NextToken": token} if token else {}))  # fmt: skip
            for point in page.get("AccessPointList", []):
                account = point["Name"].rsplit("-", 1)[-1]
                if ACCOUNT_ID.fullmatch(account) and point["Name"] == subscriber_name(self._stack, account):
                    found.append(self._subscriber(point["Name"], account, self._labs(point["Name"])))
            if not (token := page.get("NextToken")):
                return sorted(found, key=lambda subscriber: subscriber.account)

    def remove(self, account: str) -> None:
        """The account's access point, key grant, rule and role deleted (whichever it had)."""
        name = subscriber_name(self._stack, check_account(account))
        try:
            self._s3control.delete_access_point(AccountId=self._account, Name=name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "NoSuchAccessPoint":
                raise
        if self._key and (grant := self._grant(name)):
            self._kms.revoke_grant(KeyId=self._key, GrantId=grant)
        self._stop_forwarding(name, account)

    def _access_point(self, name: str) -> str:
        try:
            created = self._s3control.create_access_point(AccountId=self._account, Name=name, Bucket=self._bucket)
            return str(created["AccessPointArn"])
        except ClientError as exc:
            if "AlreadyOwnedByYou" not in exc.response["Error"]["Code"]:
                raise
        point = self._s3control.get_access_point(AccountId=self._account, Name=name)
        if point["Bucket"] != self._bucket:
            raise InvalidInput("the subscriber's access point name is taken", f"one on {self._bucket}",
                               f"{name} on {point['Bucket']}")  # fmt: skip
        return str(point["AccessPointArn"])

    def _labs(self, name: str) -> list[str]:
        try:
            policy = self._s3control.get_access_point_policy(AccountId=self._account, Name=name)["Policy"]
        except ClientError:  # NoSuchAccessPointPolicy: an add that stopped half-way; add again
            return []
        return labs_in(json.loads(policy))

    def _grant(self, name: str) -> str | None:
        pages = self._kms.get_paginator("list_grants").paginate(KeyId=self._key)
        return next((g["GrantId"] for page in pages for g in page["Grants"] if g.get("Name") == name), None)

    def _forward(self, name: str, account: str, labs: list[str], bus: str) -> None:
        pattern = json.dumps(forwarding_pattern(labs))
        what = f"pcam subscriber {account}: labs {', '.join(labs)}"
        rule = self._events.put_rule(Name=name, EventBusName=self._bus, EventPattern=pattern, Description=what)
        role_name = forwarding_role_name(self._stack, account, self._region)
        trust = json.dumps(forwarding_trust(self._account, rule["RuleArn"]))
        try:
            role = self._iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=trust, Description=what)["Role"]
        except self._iam.exceptions.EntityAlreadyExistsException:
            self._iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=trust)
            role = self._iam.get_role(RoleName=role_name)["Role"]
        permissions = json.dumps(forwarding_permissions(bus))
        self._iam.put_role_policy(RoleName=role_name, PolicyName=FORWARDING_POLICY, PolicyDocument=permissions)
        target = {"Id": "subscriber", "Arn": bus, "RoleArn": role["Arn"]}
        added = self._events.put_targets(Rule=name, EventBusName=self._bus, Targets=[target])
        if added.get("FailedEntryCount"):  # PutTargets reports a target it could not add, it does not raise
            raise RuntimeError(f"EventBridge did not add the subscriber's bus to its rule: {added['FailedEntries']}")

    def _stop_forwarding(self, name: str, account: str) -> None:
        with contextlib.suppress(self._events.exceptions.ResourceNotFoundException):
            self._events.remove_targets(Rule=name, EventBusName=self._bus, Ids=["subscriber"])
            self._events.delete_rule(Name=name, EventBusName=self._bus)
        role_name = forwarding_role_name(self._stack, account, self._region)
        with contextlib.suppress(self._iam.exceptions.NoSuchEntityException):
            self._iam.delete_role_policy(RoleName=role_name, PolicyName=FORWARDING_POLICY)
        with contextlib.suppress(self._iam.exceptions.NoSuchEntityException):
            self._iam.delete_role(RoleName=role_name)

    def _subscriber(self, name: str, account: str, labs: list[str]) -> Subscriber:
        point = self._s3control.get_access_point(AccountId=self._account, Name=name)
        try:
            targets = self._events.list_targets_by_rule(Rule=name, EventBusName=self._bus)["Targets"]
        except self._events.exceptions.ResourceNotFoundException:
            targets = []
        grant = self._grant(name) if self._key else None
        return Subscriber(account, labs, point["AccessPointArn"], point["Alias"], self._key or None, grant,
                          targets[0]["Arn"] if targets else None)  # fmt: skip

"""`pcam lab add | list | update | remove`: each lab's IAM policy (and role) as this deployment's template makes
it (``core/labs.lab_policy``). A policy written before a change of the stack (a switch to SSE-KMS adds the key's
statement) is stale until `pcam lab update` writes the current document as its default version."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

import boto3

from pcam_ops.lab_notices import LabNotices
from pcam_ops.operations import stack_outputs
from pcam_pipeline.core.labs import check_lab_name, in_lab, lab_policy

MAX_POLICY_VERSIONS = 5  # IAM keeps at most five versions of a managed policy
# `pcam lab …`: each command's help and example.
LAB_COMMANDS = {
    "add": ("create the lab's IAM policy (and, with --principal, a role it may assume; with --notify, its "
            "results, quarantines and failures mailed)",
            "pcam lab add lab-a --principal arn:aws:iam::210987654321:root --config-env prod"),
    "policy": ("print the lab's IAM policy (to manage it elsewhere)", "pcam lab policy lab-a --config-env prod"),
    "update": ("make the lab's policy this deployment's (after a change such as a switch to SSE-KMS)",
               "pcam lab update lab-a --config-env prod"),
    "remove": ("delete the lab's policy and role (its files and results stay)", "pcam lab remove lab-a"),
    "list": ("every lab, and whether its policy is current", "pcam lab list --json"),
}  # fmt: skip


@dataclass(frozen=True)
class LabAccess:
    """One lab's policy and role as IAM holds them, against what the template makes today."""

    lab: str
    policy_arn: str
    role_arn: str | None
    current: bool

    def to_json(self) -> dict[str, Any]:
        return {"lab": self.lab, "policy_arn": self.policy_arn, "role_arn": self.role_arn,
                "policy": "current" if self.current else "stale: run `pcam lab update " + self.lab + "`"}  # fmt: skip


class LabAdmin:
    def __init__(self, stack_name: str):
        self._stack = stack_name
        outputs = stack_outputs(stack_name)
        self._bucket_arn = f"arn:aws:s3:::{outputs['DataBucketName']}"
        self._data_key, self._bus = outputs.get("DataKeyArn", ""), outputs["PipelineBusName"]
        self._iam = boto3.client("iam")
        self._account = boto3.client("sts").get_caller_identity()["Account"]

    def _name(self, lab: str) -> str:
        return f"{self._stack}-lab-{check_lab_name(lab)}"

    def _policy_arn(self, lab: str) -> str:
        return f"arn:aws:iam::{self._account}:policy/{self._name(lab)}"

    def document(self, lab: str) -> dict[str, Any]:
        """The lab's policy as this deployment makes it today."""
        return lab_policy(self._bucket_arn, lab, self._data_key)

    def add(self, lab: str, principal: str | None = None, notify: str | None = None) -> dict[str, str]:
        """The lab's policy (and, for a ``principal``, a role it may assume with it; for ``notify``, its events
        mailed there). Again for an existing lab: its policy is made current, the role's trust set to
        ``principal``, and ``notify`` subscribed too."""
        name, arn = self._name(lab), self._policy_arn(lab)
        try:
            self._iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(self.document(lab)),
                                    Description=f"pcam lab {lab}: its folders only")  # fmt: skip
        except self._iam.exceptions.EntityAlreadyExistsException:
            self.update(lab)
        found = {"lab": lab, "policy_arn": arn, "drop_under": f"incoming/{in_lab(lab, '')}",
                 "results_under": f"predictions/{in_lab(lab, '')}"}  # fmt: skip
        if principal:
            trust = json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}]})  # fmt: skip
            try:
                self._iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust,
                                      Description=f"pcam lab {lab}: assumed by {principal}")  # fmt: skip
            except self._iam.exceptions.EntityAlreadyExistsException:
                self._iam.update_assume_role_policy(RoleName=name, PolicyDocument=trust)
            self._iam.attach_role_policy(RoleName=name, PolicyArn=arn)
            found["role_arn"] = self._iam.get_role(RoleName=name)["Role"]["Arn"]
        if notify:
            topic = LabNotices(self._stack, self._bus, lab).subscribe(notify)
            found["notices"] = f"{topic}: {notify} must confirm the subscription SNS mailed"
        return found

    def list(self) -> list[LabAccess]:
        """Every lab of this stack (its policies named ``<stack>-lab-<lab>``), and whether each is current."""
        prefix = f"{self._stack}-lab-"
        labs = []
        for page in self._iam.get_paginator("list_policies").paginate(Scope="Local"):
            for policy in page["Policies"]:
                if policy["PolicyName"].startswith(prefix):
                    lab = policy["PolicyName"][len(prefix) :]
                    labs.append(LabAccess(lab, policy["Arn"], self._role_arn(lab), self._is_current(policy, lab)))
        return sorted(labs, key=lambda access: access.lab)

    def stale(self) -> list[str]:
        return [access.lab for access in self.list() if not access.current]

    def update(self, lab: str) -> bool:
        """Make the lab's policy the current template's (a new default version); False if it already was."""
        arn = self._policy_arn(lab)
        policy = self._iam.get_policy(PolicyArn=arn)["Policy"]
        if self._is_current(policy, lab):
            return False
        versions = self._iam.list_policy_versions(PolicyArn=arn)["Versions"]
        if len(versions) >= MAX_POLICY_VERSIONS:  # make room: the oldest version that is not the default goes
            oldest = min((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
            self._iam.delete_policy_version(PolicyArn=arn, VersionId=oldest["VersionId"])
        self._iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(self.document(lab)),
                                        SetAsDefault=True)  # fmt: skip
        return True

    def remove(self, lab: str) -> dict[str, Any]:
        """The lab's role and policy deleted; its files and results stay in the bucket."""
        arn, name = self._policy_arn(lab), self._name(lab)
        removed: dict[str, Any] = {"lab": lab, "policy_arn": arn, "role": None}
        attached = self._iam.list_entities_for_policy(PolicyArn=arn)
        for role in attached.get("PolicyRoles", []):
            self._iam.detach_role_policy(RoleName=role["RoleName"], PolicyArn=arn)
        for user in attached.get("PolicyUsers", []):
            self._iam.detach_user_policy(UserName=user["UserName"], PolicyArn=arn)
        for group in attached.get("PolicyGroups", []):
            self._iam.detach_group_policy(GroupName=group["GroupName"], PolicyArn=arn)
        with contextlib.suppress(self._iam.exceptions.NoSuchEntityException):
            self._iam.delete_role(RoleName=name)
            removed["role"] = name
        for version in self._iam.list_policy_versions(PolicyArn=arn)["Versions"]:
            if not version["IsDefaultVersion"]:
                self._iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
        self._iam.delete_policy(PolicyArn=arn)
        LabNotices(self._stack, self._bus, lab).remove()
        return removed

    def _role_arn(self, lab: str) -> str | None:
        try:
            return str(self._iam.get_role(RoleName=self._name(lab))["Role"]["Arn"])
        except self._iam.exceptions.NoSuchEntityException:
            return None

    def _is_current(self, policy: dict[str, Any], lab: str) -> bool:
        version = self._iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
        stored = version["PolicyVersion"]["Document"]
        if isinstance(stored, str):  # IAM returns it URL-encoded JSON; boto3 decodes it to a dict
            stored = json.loads(stored)
        return bool(stored == self.document(lab))


def stale_labs(stack_name: str) -> list[str]:
    """Labs whose policy is not the current template's; none where IAM cannot be read (a lab's own credentials)."""
    from botocore.exceptions import ClientError

    try:
        return LabAdmin(stack_name).stale()
    except ClientError:
        return []

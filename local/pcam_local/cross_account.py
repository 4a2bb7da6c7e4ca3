"""Reads by another AWS account, proved offline: may a principal of that account get an object of the data bucket
through an access point, as S3 and KMS decide it?

S3 User Guide, "Configuring IAM policies for using access points": a request through an access point must be
allowed by the access point's policy *and* by the bucket's (here: a delegation to this account's access points).
Across accounts, a resource policy must name the caller's account (IAM User Guide, "Cross-account policy
evaluation logic"), and an explicit Deny anywhere wins. Under SSE-KMS, S3 decrypts with the caller's permission on
the key: a grant to its account for ``Decrypt`` whose constraints the request's encryption context meets (KMS
Developer Guide, "Grant constraints"). The caller's own IAM policy, in its own account, is its administrator's
to write, and is taken to allow the request.
"""

from __future__ import annotations

from dataclasses import dataclass

from pcam_local.iam_needs import PARTITION, Need
from pcam_local.iam_policies import allowing_statement, listed


@dataclass(frozen=True)
class ReadPath:
    """What decides a read through one access point: its policy, the bucket's, and the key's grants."""

    bucket: str
    bucket_policy: dict
    access_point_arn: str
    access_point_policy: dict
    data_key_arn: str | None = None
    grants: tuple = ()


def _account(principal: str) -> str:
    return principal.split(":")[4]


def _names(statement: dict, principal: str) -> bool:
    """The statement's Principal covers this principal (``*``, its account, the account's root, or itself)."""
    named = statement.get("Principal")
    if named == "*":
        return True
    if not isinstance(named, dict) or "AWS" not in named:
        return False
    account = _account(principal)
    return any(p in ("*", account, f"arn:{PARTITION}:iam::{account}:root", principal) for p in listed(named["AWS"]))


def resource_policy_allows(policy: dict, principal: str, need: Need) -> bool:
    """An Allow for this principal and no Deny that applies (statements without Principal do not count)."""
    statements = [s for s in policy.get("Statement", []) if _names(s, principal)]
    denies = [{**s, "Effect": "Allow"} for s in statements if s.get("Effect") == "Deny"]
    return allowing_statement(statements, need) is not None and allowing_statement(denies, need) is None


def grant_allows(grants, principal: str, operation: str, context: dict[str, str]) -> bool:
    account_root = f"arn:{PARTITION}:iam::{_account(principal)}:root"
    for grant in grants:
        if grant.get("GranteePrincipal") not in (principal, account_root) or operation not in grant["Operations"]:
            continue
        constraints = grant.get("Constraints", {})
        subset, equals = constraints.get("EncryptionContextSubset"), constraints.get("EncryptionContextEquals")
        if subset is not None and any(context.get(k) != v for k, v in subset.items()):
            continue
        if equals is not None and equals != context:
            continue
        return True
    return False


def read_denials(path: ReadPath, principal: str, key: str) -> list[str]:
    """Why ``principal`` may not GET ``key`` through the access point: empty when it may."""
    point_account = path.access_point_arn.split(":")[4]
    context = (("aws:SecureTransport", "true"), ("aws:PrincipalAccount", _account(principal)),
               ("aws:PrincipalArn", principal), ("s3:DataAccessPointAccount", point_account),
               ("s3:DataAccessPointArn", path.access_point_arn))  # fmt: skip
    reasons = []
    if not resource_policy_allows(path.access_point_policy, principal,
                                  Need("s3:GetObject", f"{path.access_point_arn}/object/{key}", context)):  # fmt: skip
        reasons.append("the access point's policy does not allow s3:GetObject on it")
    if not resource_policy_allows(
        path.bucket_policy, principal, Need("s3:GetObject", f"arn:{PARTITION}:s3:::{path.bucket}/{key}", context)
    ):
        reasons.append("the bucket's policy does not allow s3:GetObject on it")
    bucket_context = {"aws:s3:arn": f"arn:{PARTITION}:s3:::{path.bucket}"}  # S3 Bucket Keys: the bucket's ARN
    if path.data_key_arn and not grant_allows(path.grants, principal, "Decrypt", bucket_context):
        reasons.append("no grant on the data key lets its account decrypt")
    return reasons


def list_denials(path: ReadPath, principal: str, prefix: str) -> list[str]:
    """Why ``principal`` may not list ``prefix`` through the access point: empty when it may."""
    context = (("aws:SecureTransport", "true"), ("s3:prefix", prefix),
               ("s3:DataAccessPointAccount", path.access_point_arn.split(":")[4]))  # fmt: skip
    reasons = []
    if not resource_policy_allows(path.access_point_policy, principal, Need("s3:ListBucket", path.access_point_arn,
                                                                            context)):  # fmt: skip
        reasons.append("the access point's policy does not allow s3:ListBucket of it")
    if not resource_policy_allows(path.bucket_policy, principal,
                                  Need("s3:ListBucket", f"arn:{PARTITION}:s3:::{path.bucket}", context)):  # fmt: skip
        reasons.append("the bucket's policy does not allow s3:ListBucket")
    return reasons

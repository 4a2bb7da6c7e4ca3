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


# The operators _condition_holds evaluates; a Deny with any other is taken to apply (cautious: it reports a denial
# a person then reads, never an access AWS would refuse).
_EVALUATED = {"StringEquals", "StringLike", "ArnEquals", "ArnLike", "Bool", "NumericLessThanEquals", "Null"}
# Condition keys that, with fixed values, keep a statement for Principal "*" from being public (S3 User Guide,
# "Blocking public access to your Amazon S3 storage": "The meaning of 'public'").
_NON_PUBLIC_KEYS = {"aws:sourcearn", "aws:sourcevpc", "aws:sourcevpce", "aws:sourceaccount", "aws:sourceowner",
                    "aws:userid", "aws:principalorgid", "aws:principalaccount", "aws:principalarn",
                    "s3:dataaccesspointarn", "s3:dataaccesspointaccount", "aws:sourceip"}  # fmt: skip


def _evaluable(statement: dict) -> bool:
    operators = {op.rpartition(":")[2].removesuffix("IfExists") for op in statement.get("Condition", {})}
    return operators <= _EVALUATED and not {"NotPrincipal", "NotAction", "NotResource"} & statement.keys()


def resource_policy_allows(policy: dict, principal: str, need: Need) -> bool:
    """An Allow for this principal and no Deny that applies (statements without Principal do not count)."""
    statements = policy.get("Statement", [])
    allows = [s for s in statements if s.get("Effect") == "Allow" and _names(s, principal)]
    denies = [{**s, "Effect": "Allow"} for s in statements if s.get("Effect") == "Deny"]
    if any(not _evaluable(s) for s in denies):
        return False
    applying = [s for s in denies if _names(s, principal)]
    return allowing_statement(allows, need) is not None and allowing_statement(applying, need) is None


def is_public(policy: dict) -> bool:
    """A statement allows anyone, with no condition key that pins who or where: RestrictPublicBuckets then refuses
    every other account, even those a non-public statement names."""
    for statement in policy.get("Statement", []):
        if statement.get("Effect") == "Allow" and statement.get("Principal") in ("*", {"AWS": "*"}):
            keys = {key.lower() for tests in statement.get("Condition", {}).values() for key in tests}
            if not keys & _NON_PUBLIC_KEYS:
                return True
    return False


def grant_allows(grants, principal: str, operation: str, context: dict[str, str]) -> bool:
    account_root = f"arn:{PARTITION}:iam::{_account(principal)}:root"
    context = {key.lower(): value for key, value in context.items()}  # KMS: constraint keys are case-insensitive
    for grant in grants:
        if grant.get("GranteePrincipal") not in (principal, account_root) or operation not in grant["Operations"]:
            continue
        constraints = grant.get("Constraints", {})
        subset, equals = constraints.get("EncryptionContextSubset"), constraints.get("EncryptionContextEquals")
        if subset is not None and any(context.get(k.lower()) != v for k, v in subset.items()):
            continue
        if equals is not None and {k.lower(): v for k, v in equals.items()} != context:
            continue
        return True
    return False


def _denials(path: ReadPath, principal: str, need_through: Need, need_on_bucket: Need) -> list[str]:
    action = need_through.action
    reasons = []
    if not resource_policy_allows(path.access_point_policy, principal, need_through):
        reasons.append(f"the access point's policy does not allow {action} on it")
    if not resource_policy_allows(path.bucket_policy, principal, need_on_bucket):
        reasons.append(f"the bucket's policy does not allow {action} on it")
    if is_public(path.bucket_policy):
        reasons.append("the bucket's policy is public: RestrictPublicBuckets refuses every other account")
    return reasons


def _context(path: ReadPath, principal: str, *extra: tuple[str, str]) -> tuple:
    return (("aws:SecureTransport", "true"), ("aws:PrincipalAccount", _account(principal)),
            ("aws:PrincipalArn", principal), ("s3:DataAccessPointAccount", path.access_point_arn.split(":")[4]),
            ("s3:DataAccessPointArn", path.access_point_arn), *extra)  # fmt: skip


def read_denials(path: ReadPath, principal: str, key: str) -> list[str]:
    """Why ``principal`` may not GET ``key`` through the access point: empty when it may."""
    context = _context(path, principal)
    reasons = _denials(path, principal, Need("s3:GetObject", f"{path.access_point_arn}/object/{key}", context),
                       Need("s3:GetObject", f"arn:{PARTITION}:s3:::{path.bucket}/{key}", context))  # fmt: skip
    bucket_context = {"aws:s3:arn": f"arn:{PARTITION}:s3:::{path.bucket}"}  # S3 Bucket Keys: the bucket's ARN
    if path.data_key_arn and not grant_allows(path.grants, principal, "Decrypt", bucket_context):
        reasons.append("no grant on the data key lets its account decrypt")
    return reasons


def list_denials(path: ReadPath, principal: str, prefix: str) -> list[str]:
    """Why ``principal`` may not list ``prefix`` through the access point: empty when it may."""
    context = _context(path, principal, ("s3:prefix", prefix))
    return _denials(path, principal, Need("s3:ListBucket", path.access_point_arn, context),
                    Need("s3:ListBucket", f"arn:{PARTITION}:s3:::{path.bucket}", context))  # fmt: skip

"""Another account reads its labs' results through an access point of ours (`pcam subscriber`): the documents the
command writes, and the offline check of a cross-account read (S3's two policies, KMS's grants)."""

from __future__ import annotations

import pytest

from pcam_local.cross_account import ReadPath, grant_allows, list_denials, read_denials
from pcam_ops.subscriber_documents import (
    access_point_policy,
    forwarding_pattern,
    forwarding_role_name,
    labs_in,
    subscriber_name,
)
from pcam_pipeline.core.errors import InvalidInput

POINT = "arn:aws:s3:us-east-1:123456789012:accesspoint/pcam-sub-210987654321"
KEY = "arn:aws:kms:us-east-1:123456789012:key/k1"
READER = "arn:aws:iam::210987654321:role/lims-reader"
DELEGATION = {"Statement": [
    {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": ["arn:aws:s3:::data", "arn:aws:s3:::data/*"],
     "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["s3:GetObject", "s3:ListBucket"],
     "Resource": ["arn:aws:s3:::data", "arn:aws:s3:::data/*"],
     "Condition": {"StringEquals": {"s3:DataAccessPointAccount": "123456789012"}}},
]}  # fmt: skip
GRANT = {"GranteePrincipal": "arn:aws:iam::210987654321:root", "Operations": ["Decrypt"],
         "Constraints": {"EncryptionContextSubset": {"aws:s3:arn": "arn:aws:s3:::data"}}}  # fmt: skip


def path(labs=("lab-a",), grants=(GRANT,), bucket_policy=DELEGATION) -> ReadPath:
    return ReadPath("data", bucket_policy, POINT, access_point_policy(POINT, "210987654321", list(labs)), KEY, grants)


def test_a_subscriber_reads_and_lists_its_labs_results_only():
    assert read_denials(path(), READER, "predictions/labs/lab-a/s1.csv") == []
    assert list_denials(path(), READER, "predictions/labs/lab-a/") == []
    assert read_denials(path(), READER, "predictions/labs/lab-b/s1.csv") == [
        "the access point's policy does not allow s3:GetObject on it"
    ]
    assert read_denials(path(), READER, "predictions/labs/lab-a-b/s1.csv"), "a lab whose name starts alike"
    assert read_denials(path(), READER, "incoming/labs/lab-a/s1.svs"), "its labs' drops are not results"
    assert list_denials(path(), READER, "predictions/")


def test_another_account_or_a_bucket_that_does_not_delegate_refuses_the_read():
    assert read_denials(path(), "arn:aws:iam::345678901234:root", "predictions/labs/lab-a/s1.csv")
    other_account = {"Statement": [{**DELEGATION["Statement"][1], "Condition": {
        "StringEquals": {"s3:DataAccessPointAccount": "999999999999"}}}]}  # fmt: skip
    assert read_denials(path(bucket_policy=other_account), READER, "predictions/labs/lab-a/s1.csv") == [
        "the bucket's policy does not allow s3:GetObject on it"
    ]
    denied = {"Statement": [*DELEGATION["Statement"], {"Effect": "Deny", "Principal": {"AWS": "210987654321"},
              "Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/*"}]}  # fmt: skip
    assert read_denials(path(bucket_policy=denied), READER, "predictions/labs/lab-a/s1.csv"), "a Deny wins"


def test_under_sse_kms_only_a_grant_to_the_account_with_the_buckets_context_decrypts():
    assert read_denials(path(grants=()), READER, "predictions/labs/lab-a/s1.csv") == [
        "no grant on the data key lets its account decrypt"
    ]
    context = {"aws:s3:arn": "arn:aws:s3:::data"}
    assert grant_allows([GRANT], READER, "Decrypt", context)
    assert not grant_allows([GRANT], READER, "Encrypt", context)
    assert not grant_allows([GRANT], "arn:aws:iam::345678901234:root", "Decrypt", context)
    assert not grant_allows([GRANT], READER, "Decrypt", {"aws:s3:arn": "arn:aws:s3:::other"})
    exact = {**GRANT, "Constraints": {"EncryptionContextEquals": context}}
    assert grant_allows([exact], READER, "Decrypt", context)
    assert not grant_allows([exact], READER, "Decrypt", {**context, "extra": "1"})


def test_the_access_point_policy_says_which_labs_and_the_events_match_only_them():
    assert labs_in(access_point_policy(POINT, "210987654321", ["lab-b", "lab-a"])) == ["lab-a", "lab-b"]
    assert forwarding_pattern(["lab-b", "lab-a"]) == {
        "source": ["pcam.pipeline"],
        "detail": {"lab": ["lab-a", "lab-b"]},
    }
    with pytest.raises(InvalidInput, match="not an AWS account id"):
        access_point_policy(POINT, "2109", ["lab-a"])
    with pytest.raises(InvalidInput, match="not a lab name"):
        access_point_policy(POINT, "210987654321", ["Lab A"])


@pytest.mark.parametrize("stack", ["pcam-pipeline", "PCam-Prod", "p" * 128])
def test_a_subscribers_name_is_a_valid_access_point_rule_and_role_name(stack):
    name = subscriber_name(stack, "210987654321")
    assert 3 <= len(name) <= 50 and name == name.lower() and name.endswith("-sub-210987654321")
    assert subscriber_name(stack, "210987654321") != subscriber_name(stack + "x", "210987654321")


def test_a_deny_the_check_cannot_evaluate_counts_as_applying_and_a_public_bucket_policy_refuses_all():
    outside_org = {"StringNotEquals": {"aws:PrincipalOrgID": "o-1"}}
    org_only = {"Statement": [*DELEGATION["Statement"], {"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                "Resource": "arn:aws:s3:::data/*", "Condition": outside_org}]}  # fmt: skip
    assert read_denials(path(bucket_policy=org_only), READER, "predictions/labs/lab-a/s1.csv") == [
        "the bucket's policy does not allow s3:GetObject on it"
    ], "StringNotEquals is not evaluated here: the Deny is taken to apply"
    public = {"Statement": [*DELEGATION["Statement"], {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
              "Resource": "arn:aws:s3:::data/public/*"}]}  # fmt: skip
    assert read_denials(path(bucket_policy=public), READER, "predictions/labs/lab-a/s1.csv") == [
        "the bucket's policy is public: RestrictPublicBuckets refuses every other account"
    ]


def test_the_forwarding_role_is_named_per_region_within_iams_64_characters():
    names = {forwarding_role_name(stack, "210987654321", region) for stack in ("pcam-pipeline", "p" * 128)
             for region in ("us-east-1", "ap-southeast-3")}  # fmt: skip
    assert len(names) == 4 and all(len(name) <= 64 for name in names)
    assert (
        forwarding_role_name("pcam-pipeline", "210987654321", "us-east-1") == "pcam-pipeline-sub-210987654321-us-east-1"
    )


def test_under_sse_s3_no_grant_is_needed():
    plain = ReadPath("data", DELEGATION, POINT, access_point_policy(POINT, "210987654321", ["lab-a"]))
    assert read_denials(plain, READER, "predictions/labs/lab-a/s1.csv") == []
    assert read_denials(plain, READER, "predictions/labs/lab-b/s1.csv")

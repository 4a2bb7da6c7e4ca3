"""Labs sharing one deployment: each drops under ``incoming/labs/<lab>/`` and gets its results under
``predictions/labs/<lab>/``, and may touch nothing else (``lab_policy``). Pure.

A lab's slide or dataset is named by its path under the bucket's top folders: slide ``s1`` of lab ``a`` is
``labs/a/s1`` (its CSV ``predictions/labs/a/s1.csv``), so two labs' ``s1`` never meet. The folders directly
under ``incoming/`` (``slides/``, ``datasets/``) stay the deployment's own, single-lab layout; the name
``labs`` is reserved there.
"""

from __future__ import annotations

import re
from typing import Any

from pcam_pipeline.core.errors import InvalidInput

LABS = "labs"
# Lab names become IAM policy and role names and key prefixes: short, lower case, no separators but '-'.
_LAB_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")
LAB_NAME_RULE = "1 to 32 lower-case letters, digits and '-', starting and ending with a letter or digit"


def check_lab_name(lab: str) -> str:
    if not _LAB_NAME.fullmatch(lab):
        raise InvalidInput("the lab's folder name is not a lab name", LAB_NAME_RULE, repr(lab))
    return lab


def in_lab(lab: str, name: str) -> str:
    """A lab's slide id or dataset name, as the pipeline names it: ``labs/<lab>/<name>``."""
    return f"{LABS}/{lab}/{name}"


def lab_of(name: str) -> str | None:
    """The lab a slide id or dataset name belongs to; None for the deployment's own."""
    return name.split("/", 2)[1] if name.startswith(f"{LABS}/") and name.count("/") >= 2 else None


def lab_of_key(key: str) -> str | None:
    """The lab whose folder a dropped key is in, if it is a lab's (whatever else is wrong with the key)."""
    prefix = f"incoming/{LABS}/"
    if not key.startswith(prefix):
        return None
    lab = key[len(prefix) :].split("/", 1)[0]
    return lab if _LAB_NAME.fullmatch(lab) else None


def lab_policy(bucket_arn: str, lab: str, data_key_arn: str = "") -> dict[str, Any]:
    """The IAM policy of one lab: drop under its own incoming folder, read its own results and quarantine,
    list only those; nothing of another lab or of the deployment's own folders."""
    check_lab_name(lab)
    drops, results, quarantine = (f"incoming/{LABS}/{lab}/", f"predictions/{LABS}/{lab}/",
                                  f"quarantine/incoming/{LABS}/{lab}/")  # fmt: skip
    statements = [
        {"Sid": "DropFiles", "Effect": "Allow", "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
         "Resource": f"{bucket_arn}/{drops}*"},
        {"Sid": "ReadOwnDropsResultsAndQuarantine", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:GetObjectVersion"],
         "Resource": [f"{bucket_arn}/{prefix}*" for prefix in (drops, results, quarantine)]},
        {"Sid": "ListOwnFolders", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn,
         "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in (drops, results, quarantine)]}}},
    ]  # fmt: skip
    if data_key_arn:  # SSE-KMS: S3 encrypts and decrypts for the lab with the bucket's key
        statements.append({"Sid": "UseTheBucketsKeyThroughS3", "Effect": "Allow",
                           "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": data_key_arn})  # fmt: skip
    return {"Version": "2012-10-17", "Statement": statements}

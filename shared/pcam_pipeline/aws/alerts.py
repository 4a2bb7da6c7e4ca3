"""Operator alerts on the pipeline's SNS topic (failed jobs, failed evaluations, failed slides)."""

from __future__ import annotations

import unicodedata

import boto3
from botocore.exceptions import ClientError

from pcam_pipeline.aws.storage import AwsClient
from pcam_pipeline.core.errors import RetryableError

SUBJECT_PREFIX = "PCam pipeline: "
# SNS Publish: a Subject of printable ASCII without line breaks, under 100 characters (API reference).
SUBJECT_LIMIT = 99


def sns_subject(text: str) -> str:
    """``text`` as a Subject SNS accepts: accents dropped, other characters as ``?``, shortened with ``...``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    printable = "".join(ch if ch.isprintable() else " " for ch in ascii_text)
    subject = " ".join((SUBJECT_PREFIX + printable).split())
    return subject if len(subject) <= SUBJECT_LIMIT else subject[: SUBJECT_LIMIT - 3].rstrip() + "..."


class Alerter:
    def __init__(self, topic_arn: str, client: AwsClient | None = None):
        self._topic = topic_arn
        self._client = client or boto3.client("sns")

    def alert(self, subject: str, message: str) -> None:
        """``message`` carries the full names and reasons; the subject is shortened to what SNS accepts."""
        try:
            self._client.publish(TopicArn=self._topic, Subject=sns_subject(subject), Message=message)
        except ClientError as exc:
            raise RetryableError(f"cannot alert operators on {self._topic}: {exc}") from exc

"""Operator alerts on the pipeline's SNS topic (failed jobs, failed evaluations)."""

from __future__ import annotations

import boto3
from botocore.exceptions import ClientError

from pcam_pipeline.errors import RetryableError

SUBJECT_LIMIT = 100


class Alerter:
    def __init__(self, topic_arn: str, client=None):
        self._topic = topic_arn
        self._client = client or boto3.client("sns")

    def alert(self, subject: str, message: str) -> None:
        try:
            self._client.publish(
                TopicArn=self._topic, Subject=f"PCam pipeline: {subject}"[:SUBJECT_LIMIT], Message=message
            )
        except ClientError as exc:
            raise RetryableError(f"cannot alert operators on {self._topic}: {exc}") from exc

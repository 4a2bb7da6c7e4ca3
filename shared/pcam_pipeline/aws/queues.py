"""The conversion queue behind the MessageQueue port: SQS, in batches of ten."""

from __future__ import annotations

from collections.abc import Sequence

import boto3
from botocore.exceptions import ClientError

from pcam_pipeline.aws.storage import AwsClient
from pcam_pipeline.core.errors import RetryableError

SQS_BATCH = 10  # entries per SendMessageBatch, SQS's maximum


class SqsQueue:
    def __init__(self, queue_url: str, client: AwsClient | None = None):
        self._url = queue_url
        self._client = client or boto3.client("sqs")

    def send(self, bodies: Sequence[str]) -> None:
        for first in range(0, len(bodies), SQS_BATCH):
            entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[first : first + SQS_BATCH])]
            try:
                response = self._client.send_message_batch(QueueUrl=self._url, Entries=entries)
            except ClientError as exc:
                raise RetryableError(f"cannot enqueue on {self._url}: {exc}") from exc
            if response.get("Failed"):
                raise RetryableError(f"SQS refused messages: {response['Failed']}")

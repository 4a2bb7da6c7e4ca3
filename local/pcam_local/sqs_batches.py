"""A batch of SQS messages as Lambda's event source mapping hands it to a function, and what it does with the
function's answer: the records it failed come back after a short delay, the others are deleted."""

from __future__ import annotations

from pcam_local import REGION
from pcam_local.stack import QueueMapping

RETRY_DELAY_SECONDS = 1


def messages_in(sqs, queue_url: str) -> int:
    """Messages in the queue: visible, in flight or delayed."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def sqs_event(messages: list[dict], queue_url: str) -> dict:
    queue_arn = f"arn:aws:sqs:{REGION}:123456789012:{queue_url.rsplit('/', 1)[-1]}"
    return {"Records": [_sqs_record(message, queue_arn) for message in messages]}


def settle_batch(sqs, queue_url: str, messages: list[dict], failed_ids: set[str]) -> int:
    """Delete the messages handled; make the failed ones visible again after a short delay. The failed count."""
    succeeded = [m for m in messages if m["MessageId"] not in failed_ids]
    failed = [m for m in messages if m["MessageId"] in failed_ids]
    if succeeded:
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(succeeded)],
        )
    if failed:
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": RETRY_DELAY_SECONDS}
                for i, m in enumerate(failed)
            ],
        )
    return len(failed)


def _sqs_record(message: dict, queue_arn: str) -> dict:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def failed_message_ids(outcome: dict, mapping: QueueMapping, messages: list[dict]) -> set[str]:
    """A function error fails the whole batch; otherwise only the records the handler reports, if it may."""
    if outcome["error"] is not None:
        return {m["MessageId"] for m in messages}
    if not mapping.report_batch_item_failures:
        return set()
    return {f["itemIdentifier"] for f in (outcome["result"] or {}).get("batchItemFailures", [])}

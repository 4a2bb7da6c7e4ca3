"""Logger, Tracer and Metrics, created once; service names come from POWERTOOLS_SERVICE_NAME.

Also the one way a queue-fed function is put together: the decorator stack, idempotency and what
happens on a message's last attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from pcam_pipeline.core.deadline import invocation
from pcam_pipeline.core.errors import bounded

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

logger = Logger()
tracer = Tracer()
metrics = Metrics()

IDEMPOTENCY_SECONDS = 7 * 24 * 3600


def idempotent_once(event_key_jmespath: str, table_name: str) -> tuple[IdempotencyConfig, Callable[..., Any]]:
    """Powertools idempotency on the DynamoDB table: (config for ``sqs_batch_handler``, decorator).

    The decorator takes ``data_keyword_argument``: the argument whose ``event_key_jmespath`` identifies it.
    """
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    config = IdempotencyConfig(event_key_jmespath=event_key_jmespath, expires_after_seconds=IDEMPOTENCY_SECONDS)
    store = DynamoDBPersistenceLayer(table_name=table_name)
    return config, partial(idempotent_function, config=config, persistence_store=store)


def is_last_attempt(approximate_receive_count: int | str, max_receive_count: int) -> bool:
    """True when a failure now sends the message to its dead-letter queue."""
    return int(approximate_receive_count) >= max_receive_count


@contextmanager
def failure_recorded_on_last_attempt(
    record: SQSRecord, max_receive_count: int, record_failure: Callable[[str], None]
) -> Iterator[None]:
    """Let a failure reach the queue (it retries); on the message's last attempt, record it first."""
    try:
        yield
    except Exception as exc:
        logger.exception("failed; the queue will retry")
        if is_last_attempt(record.attributes.approximate_receive_count, max_receive_count):
            record_failure(bounded(str(exc)))
        raise


def sqs_batch_handler(
    record_handler: Callable[[SQSRecord], None], idempotency: IdempotencyConfig | None = None
) -> Callable[[dict[str, Any], Any], PartialItemFailureResponse]:
    """The Lambda entry point of a queue-fed function: the same decorator stack for every handler.

    Each SQS record goes to ``record_handler``; failed records are reported back (partial batch
    response) so only they are retried. ``idempotency`` (a Powertools IdempotencyConfig) learns the
    remaining time of each invocation.
    """
    return batch_handler(record_handler, "SQS", idempotency)


def batch_handler(
    record_handler: Callable[[Any], None], source: str, idempotency: IdempotencyConfig | None = None
) -> Callable[[dict[str, Any], Any], PartialItemFailureResponse]:
    """``sqs_batch_handler`` for any Powertools batch source (``EventType``'s name: SQS, DynamoDBStreams)."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    processor = BatchProcessor(event_type=EventType[source])
    traced_record_handler = tracer.capture_method(record_handler)

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
        if idempotency is not None:
            idempotency.register_lambda_context(context)
        remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 900.0
        with invocation(remaining):
            return process_partial_response(
                event=event, record_handler=traced_record_handler, processor=processor, context=context
            )

    return handler

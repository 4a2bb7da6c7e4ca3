"""Logger, Tracer and Metrics, created once; service names come from POWERTOOLS_SERVICE_NAME."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()


def sqs_batch_handler(record_handler, idempotency=None):
    """The Lambda entry point of a queue-fed function: the same decorator stack for every handler.

    Each SQS record goes to ``record_handler``; failed records are reported back (partial batch
    response) so only they are retried. ``idempotency`` (a Powertools IdempotencyConfig) learns the
    remaining time of each invocation.
    """
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    processor = BatchProcessor(event_type=EventType.SQS)
    traced_record_handler = tracer.capture_method(record_handler)

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event, context):
        if idempotency is not None:
            idempotency.register_lambda_context(context)
        return process_partial_response(
            event=event, record_handler=traced_record_handler, processor=processor, context=context
        )

    return handler

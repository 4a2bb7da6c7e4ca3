"""Model lifecycle: "Split Ready" events from the pipeline bus and SageMaker job state changes.

Train and valid ready → training (or tuning) job. Completed jobs move the model along (model → test
transform → metrics → promotion gate); failed or stopped ones are recorded and alert operators.
Jobs the pipeline did not start are ignored.
"""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.event_bridge_event import EventBridgeEvent
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from pcam_pipeline.model_lifecycle import ModelLifecycle
from pcam_pipeline.observability import logger, metrics, tracer
from pcam_pipeline.settings import ModelSettings, idempotency_table

settings = ModelSettings.from_env()
lifecycle = ModelLifecycle(settings)
processor = BatchProcessor(event_type=EventType.SQS)
# EventBridge may deliver an event twice; its id identifies it.
idempotency = IdempotencyConfig(event_key_jmespath="id", expires_after_seconds=7 * 24 * 3600)


@idempotent_function(
    data_keyword_argument="event",
    config=idempotency,
    persistence_store=DynamoDBPersistenceLayer(table_name=idempotency_table()),
)
def handle_once(event: dict) -> dict:
    parsed = EventBridgeEvent(event)
    return lifecycle.on_event(parsed.detail_type, parsed.detail)


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    event = record.json_body
    logger.append_keys(event_type=event.get("detail-type"), event_id=event.get("id"))
    logger.info("event handled", extra=handle_once(event=event))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    idempotency.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)

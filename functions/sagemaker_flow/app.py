"""SageMaker flow: pipeline events ("Split Ready", "Slide Ready", "Model Promoted") and SageMaker job state
changes. Train and valid ready → training (or tuning) job; completed jobs move the model along (model →
test transform → metrics → promotion gate); ready slides are scored with the current model; failed or
stopped jobs are recorded and alert operators. Jobs the pipeline did not start are ignored.
"""

from aws_lambda_powertools.utilities.data_classes.event_bridge_event import EventBridgeEvent
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from pcam_pipeline.aws.observability import idempotent_once, logger, sqs_batch_handler
from pcam_pipeline.core.settings import ModelSettings, idempotency_table
from pcam_pipeline.models.flow import SageMakerFlow

settings = ModelSettings.from_env()
flow = SageMakerFlow(settings)
# EventBridge may deliver an event twice; its id identifies it.
idempotency, once = idempotent_once("id", idempotency_table())


@once(data_keyword_argument="event")
def handle_once(event: dict) -> dict:
    parsed = EventBridgeEvent(event)
    return flow.on_event(parsed.detail_type, parsed.detail, parsed.get_id)


def record_handler(record: SQSRecord) -> None:
    event = record.json_body
    logger.append_keys(event_type=event.get("detail-type"), event_id=event.get("id"))
    try:
        outcome = handle_once(event=event)
    except Exception:
        logger.exception("event failed; the queue will deliver it again")  # else only the DLQ would tell
        raise
    logger.info("event handled", extra=outcome)


handler = sqs_batch_handler(record_handler, idempotency)

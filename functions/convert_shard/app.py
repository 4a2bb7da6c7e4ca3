"""Convert shard: one message per shard of a dropped patch file; writes its JPEGs."""

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from pcam_pipeline.convert import ShardConverter, ShardTask
from pcam_pipeline.notifications import is_last_attempt
from pcam_pipeline.observability import logger, sqs_batch_handler
from pcam_pipeline.settings import ConversionSettings

settings = ConversionSettings.from_env()
converter = ShardConverter(settings)


def record_handler(record: SQSRecord) -> None:
    task = ShardTask.from_message(record.json_body)
    try:
        result = converter.convert(task, claimer=record.message_id)
    except Exception as exc:
        logger.exception("shard failed; the queue will retry")
        if is_last_attempt(record.attributes.approximate_receive_count, settings.max_receive_count):
            converter.record_failure(task, str(exc))
        raise
    logger.info("shard converted", extra=result)


handler = sqs_batch_handler(record_handler)

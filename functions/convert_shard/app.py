"""Convert shard: one message per shard of a dropped patch file; writes its JPEGs."""

from functools import partial

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from pcam_pipeline.aws.observability import failure_recorded_on_last_attempt, logger, sqs_batch_handler
from pcam_pipeline.core.settings import ConversionSettings
from pcam_pipeline.ingestion.conversion import ShardConverter
from pcam_pipeline.ingestion.shard_planning import ShardTask

settings = ConversionSettings.from_env()
converter = ShardConverter(settings)


def record_handler(record: SQSRecord) -> None:
    task = ShardTask.from_message(record.json_body)
    with failure_recorded_on_last_attempt(record, settings.max_receive_count, partial(converter.record_failure, task)):
        result = converter.convert(task)
    logger.info("shard converted", extra=result)


handler = sqs_batch_handler(record_handler)

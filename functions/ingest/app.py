"""Ingest: one message per dropped file. Validates it, quarantines it or plans its conversion."""

from dataclasses import asdict

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from pcam_pipeline.ingest import Ingestor
from pcam_pipeline.keys import DroppedFile
from pcam_pipeline.notifications import dropped_files_in, is_last_attempt
from pcam_pipeline.observability import logger, sqs_batch_handler
from pcam_pipeline.settings import IngestSettings

settings = IngestSettings.from_env()
ingestor = Ingestor(settings)
idempotency = IdempotencyConfig(
    event_key_jmespath="[bucket, key, version_id, etag]", expires_after_seconds=7 * 24 * 3600
)


@idempotent_function(
    data_keyword_argument="dropped",
    config=idempotency,
    persistence_store=DynamoDBPersistenceLayer(table_name=settings.idempotency_table),
)
def ingest_once(dropped: dict, claimer: str) -> dict:
    return ingestor.ingest(DroppedFile(**dropped), claimer)


def record_handler(record: SQSRecord) -> None:
    for dropped in dropped_files_in(record.json_body):
        try:
            result = ingest_once(dropped=asdict(dropped), claimer=record.message_id)
        except Exception as exc:
            logger.exception("failed; the queue will retry")
            if is_last_attempt(record.attributes.approximate_receive_count, settings.conversion.max_receive_count):
                ingestor.record_failure(dropped, str(exc))
            raise
        logger.info("ingested", extra={"key": dropped.key, **result})


handler = sqs_batch_handler(record_handler, idempotency)

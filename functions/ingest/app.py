"""Ingest: one message per dropped file. Validates it, quarantines it or plans its conversion."""

from dataclasses import asdict
from functools import partial

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from pcam_pipeline.aws.observability import failure_recorded_on_last_attempt, idempotent_once, logger, sqs_batch_handler
from pcam_pipeline.aws.s3_notifications import dropped_files_in
from pcam_pipeline.core.dropped_files import DroppedFile
from pcam_pipeline.core.settings import IngestSettings
from pcam_pipeline.ingestion.ingestor import Ingestor
from pcam_pipeline.wsi.staging_jobs import SLIDE_STAGED, STAGING_SOURCE

settings = IngestSettings.from_env()
ingestor = Ingestor(settings)
# One ingestion per upload: S3 may announce it more than once (Put and CompleteMultipartUpload, retries).
idempotency, once = idempotent_once("[bucket, key, version_id, etag]", settings.idempotency_table)


@once(data_keyword_argument="dropped")
def ingest_once(dropped: dict) -> dict:
    return ingestor.ingest(DroppedFile(**dropped))


def record_handler(record: SQSRecord) -> None:
    body = record.json_body
    if body.get("source") == STAGING_SOURCE and body.get("detail-type") == SLIDE_STAGED:  # from the SageMaker flow
        logger.info("staging job ended", extra=ingestor.continue_staged(body["detail"]))
        return
    attempt = int(record.attributes.approximate_receive_count)  # an attempt that died leaves a trace: see ingest
    for dropped in dropped_files_in(body):
        record_failure = partial(ingestor.record_failure, dropped)
        with failure_recorded_on_last_attempt(record, settings.conversion.max_receive_count, record_failure):
            result = ingestor.ingest_attempt(dropped, attempt, partial(ingest_once, dropped=asdict(dropped)))
        logger.info("ingested", extra={"key": dropped.key, **result})


handler = sqs_batch_handler(record_handler, idempotency)

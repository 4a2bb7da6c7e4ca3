"""Lab status: each change of the state table (its stream, filtered to labs' files, slides, splits and models)
becomes the item's status object and index entry under the lab's results folder (docs/labs.md, "Following your
files")."""

import os

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from pcam_pipeline.aws.lab_status_board import LabStatusBoard
from pcam_pipeline.aws.observability import batch_handler, logger
from pcam_pipeline.state.table import plain

board = LabStatusBoard(os.environ["DATA_BUCKET"])


def record_handler(record: DynamoDBRecord) -> None:
    image = record.dynamodb.new_image if record.dynamodb else None
    if not image:
        return  # a removed record: its item's last status stays
    key = board.record_changed(plain(image))
    logger.info("lab status written", extra={"status_key": key, "event": record.event_name})


handler = batch_handler(record_handler, "DynamoDBStreams")

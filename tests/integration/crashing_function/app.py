"""A function that kills its own process on a message asking for it, as a crash in a C library would, or
takes its time; it writes each message's name with the id of the process that handled it."""

import json
import os
import signal
import time
from pathlib import Path


def handler(event, context):
    for record in event["Records"]:
        body = json.loads(record["body"])
        if body.get("crash"):
            os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(body.get("seconds", 0))
        Path(os.environ["DONE_DIR"], body["name"]).write_text(f"{context.aws_request_id} {os.getpid()}")
    return {}

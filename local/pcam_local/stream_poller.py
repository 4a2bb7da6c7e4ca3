"""A DynamoDB stream read as Lambda's event source mapping reads it: from the oldest record (TRIM_HORIZON), in
order, in batches of the mapping's size, only the records its FilterCriteria match. A failed batch (a function
error, or the records it reports failed) is retried from its first failed record; after MaximumRetryAttempts
retries the batch is described on the mapping's on-failure queue and skipped, as Lambda does (Lambda Developer
Guide, "Using Lambda with DynamoDB", "Retaining discarded records")."""

from __future__ import annotations

import json
import threading
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3

from pcam_local import REGION
from pcam_local.execution_environment import ExecutionEnvironment, lambda_environment
from pcam_local.moto_server import client_environment

POLL_SECONDS = 0.2  # below wait_until_idle's settle time, so a record written last is seen before "idle"
LOCAL_RETRY_CAP = 3  # MaximumRetryAttempts -1 (for ever) would hang a local run on a poisoned record


@dataclass
class StreamMapping:
    """A DynamoDB stream feeding a function, as Lambda's event source mapping reads it."""

    function: Any  # stack.FunctionSpec
    stream_arn: str
    batch_size: int
    filters: list[dict]  # FilterCriteria patterns: a record must match one
    maximum_retry_attempts: int
    on_failure_queue_arn: str | None


def stream_mappings(lambda_client, functions: dict) -> list[StreamMapping]:
    """The template's DynamoDB stream sources, switched off in moto: the local runtime reads them."""
    streams = []
    for mapping in lambda_client.list_event_source_mappings()["EventSourceMappings"]:
        if ":dynamodb:" not in mapping["EventSourceArn"]:
            continue
        lambda_client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)  # the runtime polls it
        filters = [json.loads(f["Pattern"]) for f in (mapping.get("FilterCriteria") or {}).get("Filters", [])]
        failure = ((mapping.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        streams.append(
            StreamMapping(
                function=functions[mapping["FunctionArn"]],
                stream_arn=mapping["EventSourceArn"],
                batch_size=int(mapping.get("BatchSize", 100)),
                filters=filters,
                maximum_retry_attempts=int(mapping.get("MaximumRetryAttempts", -1)),
                on_failure_queue_arn=failure,
            )
        )
    return streams


def start_stream_pollers(runtime) -> None:
    """One worker and poller per stream source of the runtime's stack: one shard, one invocation at a time."""
    for stream in runtime.stack.streams:
        function = stream.function
        environment = lambda_environment(
            function, {**client_environment(runtime.endpoint), **runtime.extra_environment}
        )
        log_path = runtime.log_dir / f"{function.logical_id}.log"
        worker = ExecutionEnvironment(function, environment, log_path, runtime.clock_offset)
        runtime.environments.append(worker)
        streams = boto3.client("dynamodbstreams", endpoint_url=runtime.endpoint, region_name=REGION,
                               aws_access_key_id="local", aws_secret_access_key="local")  # fmt: skip
        poller = StreamPoller(stream, worker, streams, runtime._sqs, runtime._stop)
        runtime.stream_pollers.append(poller)
        thread = threading.Thread(target=poller.run, daemon=True)
        thread.start()
        runtime._threads.append(thread)


def matches(pattern: Any, value: Any) -> bool:
    """EventBridge's pattern rules as Lambda's filters use them: nested objects, lists of allowed values,
    ``{"prefix": …}``."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(key in value and matches(p, value[key]) for key, p in pattern.items())
    if isinstance(pattern, list):
        return any(_allowed(choice, value) for choice in pattern)
    return bool(pattern == value)


def _allowed(choice: Any, value: Any) -> bool:
    if isinstance(choice, dict) and "prefix" in choice:
        return isinstance(value, str) and value.startswith(choice["prefix"])
    return bool(choice == value)


class StreamPoller:
    def __init__(self, mapping: StreamMapping, worker: ExecutionEnvironment, streams, sqs, stop: threading.Event):
        self.mapping, self.worker, self._streams, self._sqs, self._stop = mapping, worker, streams, sqs, stop
        self.caught_up = False
        self.invocations = 0

    def run(self) -> None:
        iterators = {}
        while not self._stop.is_set():
            try:
                shards = self._streams.describe_stream(StreamArn=self.mapping.stream_arn)["StreamDescription"]["Shards"]
                for shard in shards:
                    if shard["ShardId"] not in iterators:
                        iterators[shard["ShardId"]] = self._streams.get_shard_iterator(
                            StreamArn=self.mapping.stream_arn,
                            ShardId=shard["ShardId"],
                            ShardIteratorType="TRIM_HORIZON",
                        )["ShardIterator"]
                found = False
                for shard_id, iterator in list(iterators.items()):
                    page = self._streams.get_records(ShardIterator=iterator, Limit=self.mapping.batch_size)
                    iterators[shard_id] = page["NextShardIterator"]
                    if page["Records"]:
                        found = True
                        self.caught_up = False
                        self._deliver(page["Records"])
                if not found:
                    self.caught_up = True
                    self._stop.wait(POLL_SECONDS)
            except Exception:  # the poller must survive a hiccup of the local server
                traceback.print_exc()
                self._stop.wait(1.0)

    def _deliver(self, records: list[dict]) -> None:
        batch = [record for record in records if self._wanted(record)]
        retries = self.mapping.maximum_retry_attempts
        retries = LOCAL_RETRY_CAP if retries < 0 else min(retries, LOCAL_RETRY_CAP)
        for _ in range(retries + 1):
            if not batch:
                return
            outcome = self.worker.invoke({"Records": [self._as_event(record) for record in batch]})
            self.invocations += 1
            batch = batch[self._first_failed(outcome, batch) :]
        if batch:
            self._discard(batch)

    def _wanted(self, record: dict) -> bool:
        return not self.mapping.filters or any(matches(pattern, record) for pattern in self.mapping.filters)

    def _as_event(self, record: dict) -> dict:
        event = {**record, "eventSourceARN": self.mapping.stream_arn, "awsRegion": "us-east-1"}
        stamp = event.get("dynamodb", {}).get("ApproximateCreationDateTime")
        if isinstance(stamp, datetime):
            event["dynamodb"] = {**event["dynamodb"], "ApproximateCreationDateTime": stamp.timestamp()}
        return event

    @staticmethod
    def _first_failed(outcome: dict, batch: list[dict]) -> int:
        """Where the retry starts: the whole batch on an error, else the first record the function reported."""
        if outcome["error"] is not None:
            return 0
        failed = {f["itemIdentifier"] for f in (outcome["result"] or {}).get("batchItemFailures", [])}
        numbers = [record["dynamodb"]["SequenceNumber"] for record in batch]
        return min((numbers.index(n) for n in failed if n in numbers), default=len(batch))

    def _discard(self, batch: list[dict]) -> None:
        if not self.mapping.on_failure_queue_arn:
            return
        numbers = [record["dynamodb"]["SequenceNumber"] for record in batch]
        info = {"streamArn": self.mapping.stream_arn, "batchSize": len(batch),
                "startSequenceNumber": numbers[0], "endSequenceNumber": numbers[-1]}  # fmt: skip
        body = {"requestContext": {"condition": "RetryAttemptsExhausted", "functionArn": self.mapping.function.name},
                "timestamp": datetime.now(UTC).isoformat(), "DDBStreamBatchInfo": info}  # fmt: skip
        name = self.mapping.on_failure_queue_arn.rsplit(":", 1)[-1]
        url = self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
        self._sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))

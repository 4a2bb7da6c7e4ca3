"""The local Lambda runtime: polls each queue of the deployed template and runs the handler it names.

Each function runs in its own worker processes (os.environ is process-wide, as in Lambda) with the
environment the template gives it. Batches, partial batch failures, retries and dead-letter queues
behave as with Lambda's SQS event source; failed messages come back after a short delay instead of
the queue's full visibility timeout so local runs finish quickly.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import boto3

from pcam_local import REGION
from pcam_local.account_concurrency import AccountConcurrency
from pcam_local.execution_environment import (
    PROCESS_START_VARIABLES,
    ExecutionEnvironment,
    Invocation,
    lambda_environment,
    peak_overlap,
)
from pcam_local.moto_server import client_environment
from pcam_local.sqs_batches import RETRY_DELAY_SECONDS, failed_message_ids, messages_in, settle_batch, sqs_event
from pcam_local.stack import DeployedStack, QueueMapping
from pcam_local.stream_poller import StreamPoller, start_stream_pollers

# An idle poller waits longer after each empty receive, up to the longest: a dozen pollers asking 5 times
# a second took a tenth of the local server's time away from the data path.
IDLE_POLL_SECONDS = (0.2, 1.0)


@dataclass
class LocalRuntime:
    stack: DeployedStack
    endpoint: str
    log_dir: Path
    # Workers per function (logical id), overriding the deployed mapping's MaximumConcurrency; 0 switches off.
    concurrency: dict[str, int] = field(default_factory=dict)
    invocations: list[Invocation] = field(default_factory=list)
    extra_environment: dict[str, str] = field(default_factory=dict)  # e.g. where the local SageMaker listens
    also_busy: Callable[[], bool] = lambda: False  # other work (local SageMaker jobs) that will send events
    clock_offset: Callable[[], float] = lambda: 0.0  # seconds the local stack's clock is ahead (LocalClock)
    # The account's Lambda concurrency (None: unlimited). Past it an invocation is throttled: as Lambda does for
    # an SQS event source, the batch is retried until a slot frees or the queue's visibility timeout lapses
    # (Lambda Developer Guide, "Creating and configuring an Amazon SQS event source mapping").
    account_concurrency: int | None = None

    def __post_init__(self):
        self.account = AccountConcurrency(self.account_concurrency)
        self._stop = threading.Event()
        self._busy = 0
        self._lock = threading.Lock()
        self.environments: list[ExecutionEnvironment] = []
        self._threads: list[threading.Thread] = []
        self.stream_pollers: list[StreamPoller] = []
        self._sqs = boto3.client(
            "sqs",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def start(self) -> LocalRuntime:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # Read by the C library when a process starts, so they must be set before workers spawn.
        for function in self.stack.functions.values():
            for name in PROCESS_START_VARIABLES & function.environment.keys():
                os.environ[name] = function.environment[name]
        for mapping in self.stack.mappings:
            function = mapping.function
            environment = lambda_environment(function, {**client_environment(self.endpoint), **self.extra_environment})
            log_path = self.log_dir / f"{function.logical_id}.log"
            for _ in range(self.concurrency.get(function.logical_id, mapping.maximum_concurrency)):
                worker = ExecutionEnvironment(function, environment, log_path, self.clock_offset)
                self.environments.append(worker)
                thread = threading.Thread(target=self._poll, args=(mapping, worker), daemon=True)
                thread.start()
                self._threads.append(thread)
        start_stream_pollers(self)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        for worker in self.environments:
            worker.shutdown()

    def _poll(self, mapping: QueueMapping, worker: ExecutionEnvironment) -> None:
        shortest, longest = IDLE_POLL_SECONDS
        idle_wait = shortest
        while not self._stop.is_set():
            try:
                if worker.waits_for_a_warm_peer(self.environments):
                    self._stop.wait(idle_wait)
                elif self._poll_once(mapping, worker):
                    idle_wait = shortest
                else:
                    self._stop.wait(idle_wait)
                    idle_wait = min(idle_wait * 1.5, longest)
            except Exception:  # the poller must survive a hiccup of the local server
                traceback.print_exc()
                self._stop.wait(RETRY_DELAY_SECONDS)

    def _poll_once(self, mapping: QueueMapping, worker: ExecutionEnvironment) -> bool:
        """Receive one batch and run the handler on it; False when the queue was empty."""
        messages = self._sqs.receive_message(
            QueueUrl=mapping.queue_url,
            MaxNumberOfMessages=min(mapping.batch_size, 10),
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return False
        with self._lock:
            self._busy += 1
        try:
            self._run_batch(mapping, worker, messages)
        finally:
            with self._lock:
                self._busy -= 1
        return True

    def _run_batch(self, mapping: QueueMapping, worker: ExecutionEnvironment, messages: list[dict]) -> None:
        event = sqs_event(messages, mapping.queue_url)
        if not self.account.take(lambda: self._visibility_timeout(mapping)):
            return  # throttled past the visibility timeout: the messages come back, a receive spent
        try:
            started = time.monotonic()
            outcome = worker.invoke(event)
            ended = time.monotonic()
        finally:
            self.account.release()
        failed = settle_batch(self._sqs, mapping.queue_url, messages, failed_message_ids(outcome, mapping, messages))
        with self._lock:
            self.invocations.append(
                Invocation(
                    function=mapping.function.logical_id,
                    records=len(messages),
                    seconds=outcome["seconds"],
                    cpu_seconds=outcome["cpu_seconds"],
                    peak_mb=outcome["peak_mb"],
                    failed_records=failed,
                    error=outcome["error"],
                    started=started,
                    ended=ended,
                    bodies=tuple(m["Body"] for m in messages),
                )
            )

    def _visibility_timeout(self, mapping: QueueMapping) -> float:
        attributes = self._sqs.get_queue_attributes(QueueUrl=mapping.queue_url, AttributeNames=["VisibilityTimeout"])
        return float(attributes["Attributes"]["VisibilityTimeout"])

    def peak_concurrency(self, function: str) -> int:
        """The most invocations of ``function`` (logical id) that overlapped in time so far."""
        with self._lock:
            return peak_overlap([(i.started, i.ended) for i in self.invocations if i.function == function])

    def queue_depths(self) -> dict[str, int]:
        return {mapping.queue_url: messages_in(self._sqs, mapping.queue_url) for mapping in self.stack.mappings}

    def wait_until_idle(self, timeout: float = 600, settle: float = 0.6) -> bool:
        """Block until every queue is empty and nothing runs, for ``settle`` seconds; False on timeout."""
        deadline = time.monotonic() + timeout
        quiet_since = None
        while time.monotonic() < deadline:
            with self._lock:
                busy = self._busy
            streams_read = all(poller.caught_up for poller in self.stream_pollers)
            if busy == 0 and streams_read and not self.also_busy() and not any(self.queue_depths().values()):
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle:
                    return True
            else:
                quiet_since = None
            time.sleep(0.2)
        return False

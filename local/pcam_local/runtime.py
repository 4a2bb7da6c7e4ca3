"""The local Lambda runtime: polls each queue of the deployed template and runs the handler it names.

Each function runs in its own worker processes (os.environ is process-wide, as in Lambda) with the
environment the template gives it. Batches, partial batch failures, retries and dead-letter queues
behave as with Lambda's SQS event source; failed messages come back after a short delay instead of
the queue's full visibility timeout so local runs finish quickly.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import boto3

from pcam_local import REGION, iam_check
from pcam_local.moto_server import client_environment
from pcam_local.stack import DeployedStack, FunctionSpec, QueueMapping
from pcam_pipeline.aws import request_rules

RETRY_DELAY_SECONDS = 1
# An idle poller waits longer after each empty receive, up to the longest: a dozen pollers asking 5 times
# a second took a tenth of the local server's time away from the data path.
IDLE_POLL_SECONDS = (0.2, 1.0)
PROCESS_START_VARIABLES = {"MALLOC_ARENA_MAX"}
# Fault injection for tests: a worker whose HDF5 library opens an object whose key holds this text dies
# with SIGSEGV, as a crash inside the library would (the runtime and the pipeline must cope).
CRASH_READING_VARIABLE = "PCAM_LOCAL_CRASH_READING"

_handler = None
_function: FunctionSpec | None = None


class LocalContext:
    """The parts of Lambda's context object that handlers and Powertools use."""

    def __init__(self, function: FunctionSpec):
        self.function_name = function.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{function.name}"
        self.memory_limit_in_mb = function.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + function.timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# Modules that read the function's environment when imported (Powertools' logger and metrics, settings).
_FUNCTION_PACKAGES = ("pcam_pipeline", "pcam_training", "aws_lambda_powertools")


def _start_worker(function: FunctionSpec, environment: dict[str, str], log_path: str) -> None:
    global _handler, _function
    # A spawned worker first imports the parent's main script; a script that imports the pipeline (a
    # benchmark) would leave its modules configured without the function's environment (no service name,
    # no metrics namespace, logs to the parent's stdout). Start them afresh, as a Lambda environment does.
    for name in [name for name in sys.modules if name.split(".")[0] in _FUNCTION_PACKAGES]:
        del sys.modules[name]
    os.environ.update(environment)
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the worker
    sys.stdout = sys.stderr = log
    calls = Path(log_path).parent.parent / "calls" / f"{function.logical_id}-{os.getpid()}.jsonl"
    _instrument_every_session(f"{function.logical_id}Role", calls)
    if os.environ.get(CRASH_READING_VARIABLE):
        _crash_when_hdf5_reads(os.environ[CRASH_READING_VARIABLE])
    module_name, handler_name = function.handler.rsplit(".", 1)
    sys.path.insert(0, str(function.code_dir))  # Lambda's /var/task
    _handler = getattr(importlib.import_module(module_name), handler_name)
    _function = function


def _crash_when_hdf5_reads(marker: str) -> None:
    import signal

    import h5py

    opening = h5py.File.__init__

    def open_or_crash(handle, name, *args, **kwargs):
        if marker in str(getattr(name, "_key", name)):  # S3RangeFile keeps its key there
            os.kill(os.getpid(), signal.SIGSEGV)
        opening(handle, name, *args, **kwargs)

    h5py.File.__init__ = open_or_crash


def _instrument_every_session(role: str, calls: Path) -> None:
    """Every client the function creates, in any boto3 session (Powertools makes its own), refuses what AWS
    would refuse with AWS's error code, and records its calls for the IAM check (SAM names the role
    <Function>Role)."""
    original_init = boto3.session.Session.__init__

    def init(session, *args, **kwargs) -> None:
        original_init(session, *args, **kwargs)
        request_rules.install(session)
        iam_check.install_recorder(session, role, calls)

    boto3.session.Session.__init__ = init
    boto3.setup_default_session()


def _reset_peak_memory() -> None:
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def _peak_memory_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _moved_clock(offset_seconds: float):
    """The function's clock moved as far ahead as the local stack's (``LocalClock``); time still flows."""
    if not offset_seconds:
        return contextlib.nullcontext()
    import time_machine  # only a test that moves the clock needs it

    return time_machine.travel(time.time() + offset_seconds, tick=True)


def _invoke(event: dict, clock_offset_seconds: float = 0.0) -> dict:
    _reset_peak_memory()
    started, cpu_started = time.monotonic(), time.process_time()
    try:
        with _moved_clock(clock_offset_seconds):
            result, error = _handler(event, LocalContext(_function)), None
    except Exception:  # a function error fails the whole batch, as in Lambda
        result, error = None, traceback.format_exc()
    return {
        "result": result,
        "error": error,
        "seconds": time.monotonic() - started,
        "cpu_seconds": time.process_time() - cpu_started,
        "peak_mb": _peak_memory_mb(),
    }


@dataclass
class Invocation:
    function: str
    records: int
    seconds: float
    cpu_seconds: float
    peak_mb: float
    failed_records: int
    error: str | None
    started: float = 0.0  # time.monotonic() in the runtime's process, around the worker's run
    ended: float = 0.0
    bodies: tuple[str, ...] = ()  # the messages it was given


class ExecutionEnvironment:
    """One Lambda execution environment: a worker process running one invocation at a time.

    If the process dies during an invocation (a crash in a C library, a kill), the invocation fails as
    Lambda's does with Runtime.ExitError, and the next invocation gets a fresh process."""

    def __init__(self, function: FunctionSpec, environment: dict[str, str], log_path: Path, clock_offset=lambda: 0.0):
        self.function = function
        self._clock_offset = clock_offset  # seconds the local stack's clock is ahead of real time
        self._start = (function, environment, str(log_path))
        self.pool = self._new_pool()
        self.started = False  # its process starts with its first invocation (a cold start)
        self.busy = False

    def _new_pool(self) -> ProcessPoolExecutor:
        spawn = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(max_workers=1, mp_context=spawn, initializer=_start_worker, initargs=self._start)

    def invoke(self, event: dict) -> dict:
        started = time.monotonic()
        self.started = self.busy = True
        try:
            return self.pool.submit(_invoke, event, self._clock_offset()).result()
        except BrokenProcessPool:
            processes = list(self.pool._processes.values())
            self.pool.shutdown(wait=True, cancel_futures=True)
            for process in processes:
                process.join(timeout=5)
            exit_codes = [process.exitcode for process in processes]
            self.pool = self._new_pool()
            how = ", ".join(f"signal {-code}" if code and code < 0 else f"exit status {code}" for code in exit_codes)
            return {
                "result": None,
                "error": f"Runtime.ExitError: the function's process exited during the invocation ({how or 'killed'})",
                "seconds": time.monotonic() - started,
                "cpu_seconds": 0.0,
                "peak_mb": 0.0,
            }
        finally:
            self.busy = False

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


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
        self._account_slots = threading.BoundedSemaphore(self.account_concurrency or 1)
        self.throttled_invocations = 0  # invocations that had to wait for a slot of the account's concurrency
        self.peak_account_concurrency = 0
        self._running = 0
        self._stop = threading.Event()
        self._busy = 0
        self._lock = threading.Lock()
        self.environments: list[ExecutionEnvironment] = []
        self._threads: list[threading.Thread] = []
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
            environment = {
                **function.environment,
                **client_environment(self.endpoint),
                **self.extra_environment,
                "AWS_LAMBDA_FUNCTION_NAME": function.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
                "POWERTOOLS_TRACE_DISABLED": "true",
            }
            log_path = self.log_dir / f"{function.logical_id}.log"
            for _ in range(self.concurrency.get(function.logical_id, mapping.maximum_concurrency)):
                worker = ExecutionEnvironment(function, environment, log_path, self.clock_offset)
                self.environments.append(worker)
                thread = threading.Thread(target=self._poll, args=(mapping, worker), daemon=True)
                thread.start()
                self._threads.append(thread)
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
                if self._a_warm_peer_is_free(worker):
                    self._stop.wait(idle_wait)
                elif self._poll_once(mapping, worker):
                    idle_wait = shortest
                else:
                    self._stop.wait(idle_wait)
                    idle_wait = min(idle_wait * 1.5, longest)
            except Exception:  # the poller must survive a hiccup of the local server
                traceback.print_exc()
                self._stop.wait(RETRY_DELAY_SECONDS)

    def _a_warm_peer_is_free(self, worker: ExecutionEnvironment) -> bool:
        """Like Lambda, a function scales out when its started environments are all busy: a cold one
        leaves the queue to a free warm one (five idle workers of one function held 750 MB)."""
        if worker.started:
            return False
        peers = (other for other in self.environments if other.function is worker.function and other is not worker)
        return any(peer.started and not peer.busy for peer in peers)

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
        queue_arn = f"arn:aws:sqs:{REGION}:123456789012:{mapping.queue_url.rsplit('/', 1)[-1]}"
        event = {"Records": [_sqs_record(message, queue_arn) for message in messages]}
        if not self._take_account_slot(mapping):
            return  # throttled past the visibility timeout: the messages come back, a receive spent
        try:
            started = time.monotonic()
            outcome = worker.invoke(event)
            ended = time.monotonic()
        finally:
            self._release_account_slot()
        failed_ids = _failed_message_ids(outcome, mapping, messages)
        succeeded = [m for m in messages if m["MessageId"] not in failed_ids]
        failed = [m for m in messages if m["MessageId"] in failed_ids]
        if succeeded:
            self._sqs.delete_message_batch(
                QueueUrl=mapping.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(succeeded)],
            )
        if failed:
            self._sqs.change_message_visibility_batch(
                QueueUrl=mapping.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": RETRY_DELAY_SECONDS}
                    for i, m in enumerate(failed)
                ],
            )
        with self._lock:
            self.invocations.append(
                Invocation(
                    function=mapping.function.logical_id,
                    records=len(messages),
                    seconds=outcome["seconds"],
                    cpu_seconds=outcome["cpu_seconds"],
                    peak_mb=outcome["peak_mb"],
                    failed_records=len(failed),
                    error=outcome["error"],
                    started=started,
                    ended=ended,
                    bodies=tuple(m["Body"] for m in messages),
                )
            )

    def _take_account_slot(self, mapping: QueueMapping) -> bool:
        if self.account_concurrency is None:
            return True
        if not self._account_slots.acquire(blocking=False):
            with self._lock:
                self.throttled_invocations += 1
            if not self._account_slots.acquire(timeout=self._visibility_timeout(mapping)):
                return False
        with self._lock:
            self._running += 1
            self.peak_account_concurrency = max(self.peak_account_concurrency, self._running)
        return True

    def _release_account_slot(self) -> None:
        if self.account_concurrency is not None:
            with self._lock:
                self._running -= 1
            self._account_slots.release()

    def _visibility_timeout(self, mapping: QueueMapping) -> float:
        attributes = self._sqs.get_queue_attributes(QueueUrl=mapping.queue_url, AttributeNames=["VisibilityTimeout"])
        return float(attributes["Attributes"]["VisibilityTimeout"])

    def peak_concurrency(self, function: str) -> int:
        """The most invocations of ``function`` (logical id) that overlapped in time so far."""
        with self._lock:
            spans = [(i.started, i.ended) for i in self.invocations if i.function == function]
        changes = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
        running = peak = 0
        for _, change in changes:
            running += change
            peak = max(peak, running)
        return peak

    def queue_depths(self) -> dict[str, int]:
        depths = {}
        for mapping in self.stack.mappings:
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=mapping.queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            depths[mapping.queue_url] = sum(int(v) for v in attributes.values())
        return depths

    def wait_until_idle(self, timeout: float = 600, settle: float = 0.6) -> bool:
        """Block until every queue is empty and nothing runs, for ``settle`` seconds; False on timeout."""
        deadline = time.monotonic() + timeout
        quiet_since = None
        while time.monotonic() < deadline:
            with self._lock:
                busy = self._busy
            if busy == 0 and not self.also_busy() and not any(self.queue_depths().values()):
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle:
                    return True
            else:
                quiet_since = None
            time.sleep(0.2)
        return False


def _sqs_record(message: dict, queue_arn: str) -> dict:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def _failed_message_ids(outcome: dict, mapping: QueueMapping, messages: list[dict]) -> set[str]:
    """A function error fails the whole batch; otherwise only the records the handler reports, if it may."""
    if outcome["error"] is not None:
        return {m["MessageId"] for m in messages}
    if not mapping.report_batch_item_failures:
        return set()
    return {f["itemIdentifier"] for f in (outcome["result"] or {}).get("batchItemFailures", [])}

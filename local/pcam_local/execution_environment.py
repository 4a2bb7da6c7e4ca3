"""A Lambda execution environment, locally: worker processes of one function with the environment the template
gives it, its handler imported once per process (a cold start), each invocation timed and its peak memory and
CPU measured, every AWS call recorded for the IAM check."""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import sys
import time
import traceback
import uuid
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import boto3

from pcam_local import REGION
from pcam_local.iam_calls import install_recorder
from pcam_local.stack import FunctionSpec
from pcam_pipeline.aws import request_rules

# Read by the C library when a process starts: the runtime sets them before workers spawn.
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
        install_recorder(session, role, calls)

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

    def waits_for_a_warm_peer(self, environments: list[ExecutionEnvironment]) -> bool:
        """Like Lambda, a function scales out when its started environments are all busy: a cold one
        leaves the queue to a free warm one (five idle workers of one function held 750 MB)."""
        if self.started:
            return False
        peers = (other for other in environments if other.function is self.function and other is not self)
        return any(peer.started and not peer.busy for peer in peers)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def peak_overlap(spans: list[tuple[float, float]]) -> int:
    """The most (start, end) spans that overlap at one moment."""
    changes = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, change in changes:
        running += change
        peak = max(peak, running)
    return peak


def lambda_environment(function: FunctionSpec, endpoint_variables: dict[str, str]) -> dict[str, str]:
    """The variables Lambda gives the function's process: the template's, its name and memory, and where AWS is."""
    return {
        **function.environment,
        **endpoint_variables,
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "POWERTOOLS_TRACE_DISABLED": "true",
    }

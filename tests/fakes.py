"""In-memory stand-ins for the ports (state table, SageMaker, bus, alert topic; the bucket and the conversion
queue are in ``tests/fake_bucket.py``, re-exported here).

They let the domain run in unit tests without any emulator. ``InMemoryTable`` is held to
DynamoDB's behaviour by ``tests/adapters/test_state_table_contract.py``, which runs the same cases on both. mypy
(``make lint``) checks each fake against the port it stands for (``core/ports.py``, ``state.table.Table``):
see ``flow_on_fakes`` and ``in_memory_state``.
"""

from __future__ import annotations

import copy
import json
import threading
from types import SimpleNamespace
from typing import Any

from pcam_pipeline.aws import events, request_rules
from pcam_pipeline.core.errors import CapacityRefused, QuotaIsZero, RetryableError
from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.core.settings import ConversionSettings, ModelSettings
from pcam_pipeline.models.flow import SageMakerFlow
from pcam_pipeline.models.sagemaker_jobs import SageMakerSettings
from pcam_pipeline.state import StateStore
from pcam_pipeline.state.conditions import Change, Condition
from pcam_pipeline.state.table import plain, storable
from tests.fake_bucket import InMemoryBlobStore as InMemoryBlobStore  # the bucket's fakes, re-exported
from tests.fake_bucket import InMemoryQueue as InMemoryQueue
from tests.faults import Faults


class InMemoryTable:
    """The state table's operations on a dict, each atomic under one lock as DynamoDB's item writes are."""

    def __init__(self):
        self._items: dict[tuple[str, str], dict] = {}
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict) -> InMemoryTable:
        copied = InMemoryTable()
        copied._items = copy.deepcopy(self._items, memo)
        return copied

    def _copy(self, item: dict) -> dict:
        return plain(copy.deepcopy(item))

    def get(self, pk: str, sk: str) -> dict | None:
        with self._lock:
            item = self._items.get((pk, sk))
            return self._copy(item) if item is not None else None

    def query(self, pk: str, sk_prefix: str = "") -> list[dict]:
        with self._lock:
            found = [v for (p, s), v in sorted(self._items.items()) if p == pk and s.startswith(sk_prefix)]
            return [self._copy(item) for item in found]

    def scan(self) -> list[dict]:
        with self._lock:
            return [self._copy(item) for item in self._items.values()]

    def put_if_absent(self, item: dict) -> bool:
        with self._lock:
            if (item["pk"], item["sk"]) in self._items:
                return False
            self._items[(item["pk"], item["sk"])] = storable(copy.deepcopy(item))
            return True

    def update(self, pk: str, sk: str, change: Change, condition: Condition | None, return_new: bool) -> dict | None:
        with self._lock:
            existing = self._items.get((pk, sk))
            if condition is not None and not condition.holds(self._copy(existing) if existing else None):
                return None
            item: dict[str, Any] = copy.deepcopy(existing) if existing is not None else {"pk": pk, "sk": sk}
            item.update(storable(copy.deepcopy(change.sets)))
            if change.map_entry is not None:
                map_name, entry, value = change.map_entry
                item.setdefault(map_name, {})[entry] = value
            for name, values in change.add.items():
                item[name] = set(item.get(name, set())) | set(values)
            for name in change.remove:
                item.pop(name, None)
            if change.map_entry_removed is not None:
                item.get(change.map_entry_removed[0], {}).pop(change.map_entry_removed[1], None)
            self._items[(pk, sk)] = item
            return self._copy(item) if return_new else {}

    def delete(self, pk: str, sk: str) -> None:
        with self._lock:
            self._items.pop((pk, sk), None)


def in_memory_state() -> StateStore:
    return StateStore(table=InMemoryTable())


class FakeLauncher:
    """Accepts every job once per name, as SageMaker does, and refuses what SageMaker's API would
    (the strict request checker); tells what it was asked."""

    def __init__(self, bucket: str = "data"):
        self.bucket = bucket
        self.started: dict[str, tuple[JobKind, dict]] = {}
        self.models: dict[str, dict] = {}
        self.best_of_tuning: dict[str, str] = {}
        self.refused: list[tuple[str, list[str]]] = []
        self.capacity_refusals = 0  # the next N starts are refused as SageMaker refuses over a quota
        self.zero_quota = ""  # a training quota this account has at 0 (every training start is refused)

    def _check(self, operation: str, request: dict) -> None:
        problems = request_rules.violations("sagemaker", operation, request)
        if problems:
            self.refused.append((operation, problems))
            raise RetryableError(f"SageMaker refused {operation}: ValidationException: {problems}")

    def start(self, kind: JobKind, name: str, request: dict) -> bool:
        self._check(kind.resource.create_operation, request)
        if name in self.started:
            return False
        if self.zero_quota and kind in (JobKind.TRAINING, JobKind.TUNING):
            raise QuotaIsZero(self.zero_quota, f"SageMaker refused {name}: ResourceLimitExceeded")
        if self.capacity_refusals:
            self.capacity_refusals -= 1
            raise CapacityRefused(f"SageMaker has no capacity for {name} now: ResourceLimitExceeded")
        self.started[name] = (kind, request)
        return True

    def create_model(self, request: dict) -> bool:
        self._check("CreateModel", request)
        if request["ModelName"] in self.models:
            return False
        self.models[request["ModelName"]] = request
        return True

    def names(self, kind: JobKind) -> list[str]:
        return [name for name, (started_kind, _) in self.started.items() if started_kind is kind]

    def describe_training_job(self, name: str) -> dict:
        return {
            "TrainingJobName": name,
            "ModelArtifacts": {"S3ModelArtifacts": f"s3://{self.bucket}/models/{name}/output/model.tar.gz"},
            "HyperParameters": {"epochs": "2"},
        }

    def best_training_job(self, tuning_job: str) -> str:
        return self.best_of_tuning[tuning_job]


class RecordingPublisher:
    def __init__(self):
        self.published: list[tuple[str, dict]] = []  # (event, its newest version's detail)
        self.entries: list[dict] = []  # every PutEvents entry, each version of each event

    def publish(self, detail_type: str, detail: dict) -> None:
        """Refuses what EventBridge refuses (an entry over 256 KB), as the bus would on every retry."""
        entries = events.put_events_entries("b", detail_type, detail)
        for entry in entries:  # one request per version, as the real publisher sends them
            if problems := request_rules.violations("events", "PutEvents", {"Entries": [entry]}):
                raise RetryableError(f"{detail_type!r} was refused by the bus: {problems}")
        self.entries += entries
        self.published.append((detail_type, json.loads(entries[0]["Detail"])))

    def of_type(self, detail_type: str) -> list[dict]:
        return [detail for kind, detail in self.published if kind == detail_type]


class RecordingAlerter:
    def __init__(self):
        self.alerts: list[tuple[str, str]] = []

    def alert(self, subject: str, message: str) -> None:
        self.alerts.append((subject, message))


def conversion_settings(**overrides) -> ConversionSettings:
    return ConversionSettings("data", "state", "bus", jpeg_quality=90, resize_to=0, max_receive_count=5, **overrides)


def model_settings(minimum_auc: float = 0.85, minimum_sensitivity: float = 0.0, **sagemaker) -> ModelSettings:
    """The flow's settings for tests; the sensitivity rule of the gate is off (tests of the gate turn it on)."""
    return ModelSettings(
        bucket="data",
        state_table="state",
        event_bus="bus",
        alert_topic_arn="arn:aws:sns:us-east-1:123456789012:alerts",
        minimum_auc=minimum_auc,
        minimum_sensitivity=minimum_sensitivity,
        decision_threshold=0.5,
        sagemaker=SageMakerSettings(
            role_arn="arn:aws:iam::123456789012:role/sm-training",
            model_role_arn="arn:aws:iam::123456789012:role/sm-transform",
            evaluation_role_arn="arn:aws:iam::123456789012:role/sm-evaluation",
            region="us-east-1",
            bucket="data",
            **sagemaker,
        ),
        scoring_batch_window_seconds=0,  # a ready slide's batch is due at once (tests set a window to batch)
    )


def flow_on_fakes(
    settings: ModelSettings | None = None, alerter: RecordingAlerter | None = None, faults: Faults | None = None
) -> SimpleNamespace:
    """The SageMaker side wired to fakes; the fakes are attributes to inspect. ``faults``: every port call of the
    flow goes through it (tests/faults.py)."""
    table, blobs, launcher = InMemoryTable(), InMemoryBlobStore(), FakeLauncher()
    publisher, alerter = RecordingPublisher(), alerter or RecordingAlerter()
    faults = faults or Faults()
    state = StateStore(table=faults.wrap(table, "table"))
    ports = (faults.wrap(port, name) for port, name in
             ((blobs, "bucket"), (launcher, "sagemaker"), (publisher, "bus"), (alerter, "alerts")))  # fmt: skip
    # Typed arguments: mypy checks each fake against the port SageMakerFlow takes.
    ingest_queue = InMemoryQueue()  # where slide staging jobs' ends go back to ingestion
    bucket, sagemaker, bus, alerts = ports
    flow = SageMakerFlow(settings or model_settings(), state, bucket, sagemaker, bus, alerts,
                         faults.wrap(ingest_queue, "ingest queue"))  # fmt: skip
    return SimpleNamespace(state=state, blobs=blobs, launcher=launcher, publisher=publisher, alerter=alerter, flow=flow,
                           table=table, ingest_queue=ingest_queue)  # fmt: skip

"""What a lab can see of its own files, slides and datasets without any access but its S3 folders: one status
object per item under ``predictions/labs/<lab>/status/`` and an index of them, made from the state table's
records as they change (``functions/lab_status``, from the table's stream). Pure.

Each status says the stage the item is at, what it waits for, the last thing that happened, and where its
results or the reason for its quarantine are (keys the lab's policy can read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pcam_pipeline.core.labs import LABS

STATUS_FOLDER = "status/"
INDEX_NAME = "index.json"

# What each record status means to the lab: the stage's words, and what it waits for (None: nothing).
FILE_STAGES = {
    "received": ("received", "ingestion"),
    "staged": ("received", "ingestion (the file is being unpacked)"),
    "staging by a SageMaker Processing job": ("being read", "a staging job (a large slide: minutes to start)"),
    "labels recorded": ("labels recorded", "the split's images file"),
    "training settings recorded": ("training settings recorded", None),
    "sidecar recorded": ("sidecar recorded", None),
    "converting": ("converting", "conversion of its patches"),
    "converted": ("converted", None),
    "quarantined": ("quarantined", None),
    "superseded": ("replaced by a newer upload", None),
    "failed": ("failed", "your operator (they were alerted)"),
}
SLIDE_STAGES = {
    "waiting for a model": ("waiting for a model", "a model good enough to score slides"),
    "queued": ("queued for scoring", "a free scoring slot or SageMaker capacity"),
    "scoring": ("scoring", "the scoring job"),
    "scored": ("scored", None),
    "failed": ("scoring failed", "your operator (they were alerted)"),
}
OWNER_STAGES = {
    "converting": ("converting", "conversion of its patches"),
    "waiting for images": ("waiting for its images file", "the split's images file"),
    "ready": ("ready", None),
    "failed": ("failed", "a corrected file"),
}


@dataclass(frozen=True)
class StatusEntry:
    """One item's status object: where it goes, its index entry and the whole document."""

    lab: str
    name: str  # the item, as the index lists it: files/…, slides/…, datasets/…
    document: dict[str, Any]

    @property
    def key(self) -> str:
        return status_key(self.lab, self.name)

    def index_entry(self) -> dict[str, Any]:
        fields = ("kind", "stage", "waiting_for", "updated_at")
        return {**{field: self.document.get(field) for field in fields}, "status_key": self.key}


def status_prefix(lab: str) -> str:
    return f"predictions/{LABS}/{lab}/{STATUS_FOLDER}"


def status_key(lab: str, name: str) -> str:
    return f"{status_prefix(lab)}{name}.json"


def index_key(lab: str) -> str:
    return f"{status_prefix(lab)}{INDEX_NAME}"


def _lab_and_name(identifier: str) -> tuple[str, str] | None:
    """``labs/<lab>/<name>`` → (lab, name); None for the deployment's own items."""
    parts = identifier.split("/", 2)
    return (parts[1], parts[2]) if len(parts) == 3 and parts[0] == LABS else None


def _stage(table: dict[str, tuple[str, str | None]], status: str | None) -> tuple[str, str | None]:
    return table.get(status or "", (status or "unknown", None))


def _file(item: dict[str, Any]) -> StatusEntry | None:
    key = item["pk"].removeprefix("file#")
    found = _lab_and_name(key.removeprefix("incoming/"))
    if found is None:
        return None
    lab, rest = found
    stage, waiting = _stage(FILE_STAGES, item.get("status"))
    document = {"kind": "file", "key": key, "version": item.get("version"), "stage": stage,
                "waiting_for": waiting, "reason": item.get("reason") or None,
                "received_at": item.get("received_at"), "updated_at": item.get("updated_at")}  # fmt: skip
    if item.get("quarantine_key"):
        document["quarantine"] = {"key": item["quarantine_key"], "reason_key": item["quarantine_key"] + ".error.json"}
    return StatusEntry(lab, f"files/{rest}", document)


def _slide(item: dict[str, Any]) -> StatusEntry | None:
    slide_id = item.get("slide_id") or item["pk"].removeprefix("slide#")
    found = _lab_and_name(slide_id)
    if found is None:
        return None
    lab, name = found
    if item.get("scoring_status"):
        stage, waiting = _stage(SLIDE_STAGES, item.get("scoring_status"))
    else:
        stage, waiting = _stage(OWNER_STAGES, item.get("status"))
    document: dict[str, Any] = {"kind": "slide", "slide_id": slide_id, "upload": item.get("x_key"),
                                "version": item.get("x_version"), "stage": stage, "waiting_for": waiting,
                                "reason": item.get("scoring_failure") or item.get("failure") or None,
                                "updated_at": item.get("updated_at")}  # fmt: skip
    if item.get("scoring_status") == "scored" and item.get("predictions_key"):
        base = item["predictions_key"].removesuffix(".csv")
        document["results"] = {extension: f"{base}.{extension}" for extension in ("csv", "json", "html")}
        document |= {"verdict": item.get("verdict"), "scored_at": item.get("scored_at"),
                     "model": item.get("scored_model")}  # fmt: skip
    return StatusEntry(lab, f"slides/{name}", document)


def _split(item: dict[str, Any]) -> StatusEntry | None:
    found = _lab_and_name(item.get("dataset") or "")
    if found is None or not item.get("split"):
        return None
    lab, dataset = found
    stage, waiting = _stage(OWNER_STAGES, item.get("status"))
    document = {"kind": "split", "dataset": item["dataset"], "split": item["split"], "stage": stage,
                "waiting_for": waiting, "reason": item.get("failure") or None, "patches": item.get("x_count"),
                "updated_at": item.get("updated_at")}  # fmt: skip
    return StatusEntry(lab, f"datasets/{dataset}/{item['split']}", document)


def _model(item: dict[str, Any]) -> StatusEntry | None:
    """A model trained on a lab's dataset: its evaluation, which the lab may read (docs/labs.md)."""
    found = _lab_and_name(item.get("dataset") or "")
    if found is None or item.get("experiment"):
        return None
    lab, dataset = found
    metrics = item.get("metrics") or {}
    shown = {name: metrics[name] for name in ("auc", "count", "tumour_count", "threshold") if name in metrics}
    point = metrics.get("operating_point") or {}
    shown |= {name: point[name] for name in ("test_sensitivity", "test_sensitivity_ci95", "test_specificity",
                                              "test_specificity_ci95") if name in point}  # fmt: skip
    decision = item.get("decision") or {}
    document = {"kind": "model", "dataset": item["dataset"], "model_name": item.get("model_name"),
                "stage": item.get("status") or "created", "waiting_for": None, "evaluation": shown,
                "promoted": decision.get("promoted"), "decision": decision.get("reason"),
                "updated_at": item.get("evaluated_at") or item.get("created_at")}  # fmt: skip
    return StatusEntry(lab, f"datasets/{dataset}/models/{item.get('model_name')}", document)


def status_entry(item: dict[str, Any]) -> StatusEntry | None:
    """The status object a changed state record makes, if the record is a lab's file, slide, split or model."""
    pk = item.get("pk", "")
    if pk.startswith("file#"):
        return _file(item)
    if pk.startswith("slide#"):
        return _slide(item)
    if pk.startswith("split#"):
        return _split(item)
    if pk == "models" and str(item.get("sk", "")).startswith("model#"):
        return _model(item)
    return None


def index_with(index: dict[str, Any] | None, entry: StatusEntry, now: str) -> dict[str, Any]:
    """The lab's index with this item's entry in place; items stay sorted by name."""
    items = dict((index or {}).get("items", {}))
    items[entry.name] = entry.index_entry()
    return {"lab": entry.lab, "updated_at": now, "items": dict(sorted(items.items()))}

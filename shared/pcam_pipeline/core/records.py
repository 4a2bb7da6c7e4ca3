"""Typed records of the state table: what the pipeline knows about each file, split, slide, job and model.

Frozen dataclasses built from stored items (``from_item``); statuses are enums whose values are the
strings stored in the table and shown by ``pcam status``. Writes go through ``pcam_pipeline.state``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self, overload

from pcam_pipeline.core.errors import IncompleteRecord
from pcam_pipeline.core.statuses import FileStatus, OwnerStatus, ScoringStatus


def present[T](value: T | None, what: str) -> T:
    """``value``, which the state promises at this point; a plain error naming ``what`` when it is missing."""
    if value is None:
        raise IncompleteRecord(f"the state table has no {what}")
    return value


@dataclass(frozen=True)
class Record:
    """Builds a frozen dataclass from a stored item, ignoring keys it does not know (pk, sk, …)."""

    _enums: ClassVar[dict[str, type]] = {}

    @overload
    @classmethod
    def from_item(cls, item: dict[str, Any], **extra: Any) -> Self: ...

    @overload
    @classmethod
    def from_item(cls, item: dict[str, Any] | None, **extra: Any) -> Self | None: ...

    @classmethod
    def from_item(cls, item: dict[str, Any] | None, **extra: Any) -> Self | None:
        if item is None:
            return None
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in {**item, **extra}.items() if k in known and v is not None}
        for name, enum in cls._enums.items():
            if name in values:
                values[name] = enum(values[name])
        return cls(**values)

    def all_fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_item(self) -> dict[str, Any]:
        """The attributes to store for a new record: every field that has a value."""
        return {k: v for k, v in self.all_fields().items() if v not in (None, "")}


@dataclass(frozen=True)
class FileRecord(Record):
    """One upload of one key (``file#<key>``, ``v#<version>``)."""

    _enums: ClassVar = {"status": FileStatus}
    key: str
    version: str
    status: FileStatus = FileStatus.RECEIVED
    reason: str = ""
    received_at: str | None = None
    patch_count: int | None = None
    label_count: int | None = None
    quarantine_key: str | None = None
    unannounced_quarantine: dict[str, Any] | None = None  # "File Quarantined" to publish: a retry finishes it


@dataclass(frozen=True)
class PatchOwner(Record):
    """What a split and a slide share: their current images (``x_*``) and the conversion of them."""

    _enums: ClassVar = {"status": OwnerStatus}
    kind: str = ""
    status: OwnerStatus | None = None
    x_key: str | None = None
    x_version: str | None = None
    x_version_id: str | None = None  # the upload's S3 version id (x_source_version may be a staged copy's)
    x_sequencer: str | None = None  # S3's sequencer of the upload (DroppedFile.sequencer)
    x_source_key: str | None = None
    x_source_version: str | None = None
    x_run: str | None = None
    x_count: int | None = None
    x_stain_normalisation: str = "none"  # how its patches were converted (StainNormalisation, wsi/stain.py)
    shards_total: int | None = None
    shards_sent: str | None = None  # the run whose shard messages are on the queue
    shards_done: list[Any] = field(default_factory=list)
    failed_shards: dict[str, Any] = field(default_factory=dict)
    image_prefix: str | None = None
    image_edge: int = 96
    storage: str | None = None
    has_coords: bool = False
    manifest_key: str | None = None
    ready_token: str | None = None
    announced_token: str | None = None  # the inputs whose ready event is published
    failure: str = ""

    @property
    def ready(self) -> bool:
        return self.status is OwnerStatus.READY and self.manifest_key is not None

    @property
    def shards_complete(self) -> bool:
        return self.shards_total is not None and len(self.shards_done) == self.shards_total


# The stored attributes that describe one upload of images, forgotten together when a new pair starts.
IMAGE_FIELDS = (
    *(f.name for f in fields(PatchOwner) if f.name.startswith("x_")),
    "shards_total",
    "image_prefix",
    "image_edge",
    "storage",
    "shards_done",
)


@dataclass(frozen=True)
class SplitRecord(PatchOwner):
    """A dataset split (``split#<dataset>/<split>``): its images and its labels (``y_*``)."""

    dataset: str = ""
    split: str = ""
    y_key: str | None = None
    y_version: str | None = None
    y_sequencer: str | None = None
    y_labels_key: str | None = None  # the labels as read at ingestion (keys.labels_key)
    y_count: int | None = None
    y_tumour_count: int | None = None


LABEL_FIELDS = tuple(f.name for f in fields(SplitRecord) if f.name.startswith("y_"))


@dataclass(frozen=True)
class SlideRecord(PatchOwner):
    """A slide (``slide#<slide_id>``): its patches and the scoring of its current upload."""

    _enums: ClassVar = {"status": OwnerStatus, "scoring_status": ScoringStatus}
    slide_id: str = ""
    scoring_status: ScoringStatus | None = None
    tile_plan_key: str | None = None  # a whole-slide image's tiles (tiling.TilePlan); None for HDF5 patches
    coords_key: str | None = None  # an HDF5 slide's coordinates as read at ingestion (keys.coords_key)
    sidecar_version: str | None = None  # the sidecar whose µm/px the whole-slide image was cut at
    queued_run: str | None = None  # the upload queued for scoring (once per upload)
    queued_at: str | None = None
    scoring_job: str | None = None
    scoring_model: str | None = None
    scoring_failure: str = ""
    scored_job: str | None = None
    scored_run: str | None = None
    scored_model: str | None = None
    scored_at: str | None = None
    predictions_key: str | None = None
    tumour_fraction: float | None = None
    verdict: str | None = None  # the slide-level category of its result (scoring/lesions.py)


@dataclass(frozen=True)
class ScoringQueueEntry(Record):
    """A ready slide's upload waiting for a transform job (``scoring-queue``, ``<slide_id>#<run_id>``)."""

    slide_id: str
    run_id: str
    patch_count: int = 0
    queued_at: str = ""
    alone: bool = False  # its batch failed: scored alone, so that one bad slide cannot block others
    request: str = ""  # a rescoring request ("" for the upload's first scoring)
    model: str = ""  # the model to score with ("" for the current model when its job starts)
    job: str = ""  # the job it was put in, before that job's start (a retry finishes the entry's move to it)

    @property
    def sk(self) -> str:
        rescore = f"#rescore {self.request}" if self.request else ""
        return f"{self.slide_id}#{self.run_id}{rescore}" + ("#alone" if self.alone else "")

    @property
    def results_for(self) -> str:
        """What one result of the slide answers: its upload, scored first or again for a request."""
        return f"{self.run_id}|{self.request}"


def owner_record(item: dict[str, Any] | None) -> SplitRecord | SlideRecord | None:
    if item is None:
        return None
    record: SplitRecord | SlideRecord = (SlideRecord if item.get("kind") == "slide" else SplitRecord).from_item(item)
    return record

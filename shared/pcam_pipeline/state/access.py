"""Keys of the state table's records and the primitive reads and writes the named methods build on.

Records (pk, sk):
- ``file#<key>``, ``v#<version>``: what happened to one upload (status, reason, counts).
- ``split#<dataset>/<split>``, ``current``: the split's current images (x) and labels (y), conversion
  progress of x, and whether the split is ready.
- ``slide#<slide_id>``, ``current``: the slide's current upload, its conversion and its scoring.
- ``sidecar#<slide_id>``, ``current``: the µm/px a lab's sidecar gives for a whole-slide image.
- ``awaiting-mpp#<slide_id>``, ``current``: a whole-slide image quarantined for want of µm/px, restored
  when its sidecar arrives.
- ``dataset#<dataset>``, ``current``: its latest training job, that job's status and failure, its latest model.
- ``dataset#<dataset>``, ``training-start#<UTC day>#<n>``: the n-th training started for it that day (the cap).
- ``job#<name>``, ``current``: a SageMaker job the pipeline started (kind, dataset, status, reason, times).
- ``models``, ``model#<name>``: a trained model, its evaluation and the promotion decision.
- ``models``, ``current``: which model scores slides, with its metrics, lineage and the models it replaced.
- ``models``, ``history#<time>#<model>``: every promotion and rollback, by whom and why.
- ``waiting-slides``, ``<slide_id>``: a ready slide waiting for a model to be promoted.
- ``capacity-waits``, ``<job>``: a training, test transform or evaluation job SageMaker refused for capacity,
  started again by the scheduled tick.
- ``scoring-queue``, ``<slide_id>#<run_id>``: a ready slide's upload waiting for a transform job.
- ``transform-slots``, ``slot#<n>``: the slide-scoring transform job running in slot n, if any.
"""

from __future__ import annotations

from typing import Any

import boto3

from pcam_pipeline.core.records import SlideRecord, SplitRecord, owner_record
from pcam_pipeline.state.conditions import Change, Condition
from pcam_pipeline.state.table import DynamoDBTable, Table, now_iso

CURRENT = "current"
MODELS_PK = "models"
WAITING_SLIDES_PK = "waiting-slides"
CAPACITY_WAITS_PK = "capacity-waits"
SCORING_QUEUE_PK = "scoring-queue"
TRANSFORM_SLOTS_PK = "transform-slots"


def file_pk(key: str) -> str:
    return f"file#{key}"


def split_pk(dataset: str, split: str) -> str:
    return f"split#{dataset}/{split}"


def slide_pk(slide_id: str) -> str:
    return f"slide#{slide_id}"


def slide_id_of(owner: str) -> str | None:
    """The slide a record key names, or None for a dataset's split."""
    return owner.removeprefix("slide#") if owner.startswith("slide#") else None


def sidecar_pk(slide_id: str) -> str:
    return f"sidecar#{slide_id}"


def awaiting_mpp_pk(slide_id: str) -> str:
    return f"awaiting-mpp#{slide_id}"


def dataset_pk(dataset: str) -> str:
    return f"dataset#{dataset}"


def job_pk(name: str) -> str:
    return f"job#{name}"


def model_sk(name: str) -> str:
    return f"model#{name}"


class TableAccess:
    """Primitive operations; only the named methods of the state package call the writing ones."""

    def __init__(self, table_name: str | None = None, resource: Any = None, table: Table | None = None):
        if table is None:
            table = DynamoDBTable((resource or boto3.resource("dynamodb")).Table(table_name))
        self._table = table

    def get(self, pk: str, sk: str = CURRENT) -> dict[str, Any] | None:
        return self._table.get(pk, sk)

    def query(self, pk: str, sk_prefix: str = "") -> list[dict[str, Any]]:
        return self._table.query(pk, sk_prefix)

    # Reads every use case shares.
    def owner(self, owner_pk: str) -> SplitRecord | SlideRecord | None:
        return owner_record(self.get(owner_pk))

    def split(self, dataset: str, split: str) -> SplitRecord | None:
        return SplitRecord.from_item(self.get(split_pk(dataset, split)))

    def slide(self, slide_id: str) -> SlideRecord | None:
        return SlideRecord.from_item(self.get(slide_pk(slide_id)))

    def scan_all(self) -> list[dict[str, Any]]:
        return self._table.scan()

    def _put_new(self, pk: str, sk: str, fields: dict[str, Any]) -> bool:
        """Create a record only if it does not exist yet; False if it did."""
        return self._table.put_if_absent(
            {**fields, "pk": pk, "sk": sk, "created_at": now_iso(), "updated_at": now_iso()}
        )

    def _set(
        self,
        pk: str,
        sk: str,
        fields: dict[str, Any],
        condition: Condition | None = None,
        return_new: bool = False,
        **change: Any,
    ) -> dict[str, Any] | None:
        """One update; None (nothing written) when ``condition`` does not hold.

        ``change``: add (to number sets), remove (attributes), map_entry, as in ``Change``.
        """
        update = Change(sets={**fields, "updated_at": now_iso()}, **change)
        return self._table.update(pk, sk, update, condition, return_new)

    def _delete(self, pk: str, sk: str) -> None:
        self._table.delete(pk, sk)

"""The state table: one record per dropped file version, per split and per slide.

Records (pk, sk):
- ``file#<key>``, ``v#<version>``: what happened to one upload (status, reason, counts).
- ``split#<dataset>/<split>``, ``current``: the split's current images (x) and labels (y), conversion
  progress of x, and whether the split is ready.
- ``slide#<slide_id>``, ``current``: the slide's current upload and its conversion progress.
- ``dataset#<dataset>``, ``current``: its latest training job, that job's status and failure, its latest model.
- ``job#<name>``, ``current``: a SageMaker job the pipeline started (kind, dataset, status, reason, times).
- ``models``, ``model#<name>``: a trained model, its evaluation and the promotion decision.
- ``models``, ``current``: which model scores slides, with its metrics, lineage and the models it replaced.
- ``models``, ``history#<time>``: every promotion and rollback, by whom and why.
- ``waiting-slides``, ``<slide_id>``: a ready slide waiting for a model to be promoted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from pcam_pipeline.errors import StorageError

CURRENT = "current"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def file_pk(key: str) -> str:
    return f"file#{key}"


def split_pk(dataset: str, split: str) -> str:
    return f"split#{dataset}/{split}"


def slide_pk(slide_id: str) -> str:
    return f"slide#{slide_id}"


def dataset_pk(dataset: str) -> str:
    return f"dataset#{dataset}"


def job_pk(name: str) -> str:
    return f"job#{name}"


MODELS_PK = "models"


def model_sk(name: str) -> str:
    return f"model#{name}"


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; callers want ints and lists."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, set)):
        return sorted(_plain(v) for v in value)
    return value


def _storable(value: Any) -> Any:
    """DynamoDB takes no floats: store them as Decimal (metrics, thresholds)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class StateStore:
    def __init__(self, table_name: str, resource=None):
        self._table = (resource or boto3.resource("dynamodb")).Table(table_name)

    def _update(
        self,
        pk: str,
        sk: str,
        sets: dict[str, Any],
        *,
        condition=None,
        add: dict[str, set] | None = None,
        remove: tuple[str, ...] = (),
        map_entry: tuple[str, str, Any] | None = None,
        return_new: bool = False,
    ) -> dict | None:
        """One UpdateItem; returns None when ``condition`` does not hold.

        Placeholders avoid #n/:v, which boto3 uses for the condition expression.
        """
        sets = {**sets, "updated_at": now_iso()}
        names = {f"#s{i}": name for i, name in enumerate(sets)}
        values = {f":s{i}": _storable(value) for i, value in enumerate(sets.values())}
        set_parts = [f"#s{i} = :s{i}" for i in range(len(sets))]
        if map_entry is not None:
            map_name, entry, value = map_entry
            names.update({"#map": map_name, "#entry": entry})
            values[":entry"] = value
            set_parts.append("#map.#entry = :entry")
        expression = "SET " + ", ".join(set_parts)
        if add:
            names.update({f"#a{i}": name for i, name in enumerate(add)})
            values.update({f":a{i}": value for i, value in enumerate(add.values())})
            expression += " ADD " + ", ".join(f"#a{i} :a{i}" for i in range(len(add)))
        if remove:
            expression += " REMOVE " + ", ".join(remove)
        kwargs: dict[str, Any] = {
            "Key": {"pk": pk, "sk": sk},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if condition is not None:
            kwargs["ConditionExpression"] = condition
        if return_new:
            kwargs["ReturnValues"] = "ALL_NEW"
        try:
            response = self._table.update_item(**kwargs)
        except ClientError as exc:
            if _is_condition_failure(exc):
                return None
            raise StorageError(f"cannot update state {pk}: {exc}") from exc
        return _plain(response.get("Attributes", {})) if return_new else {}

    def get(self, pk: str, sk: str = CURRENT) -> dict | None:
        try:
            item = self._table.get_item(Key={"pk": pk, "sk": sk}, ConsistentRead=True).get("Item")
        except ClientError as exc:
            raise StorageError(f"cannot read state {pk}: {exc}") from exc
        return _plain(item) if item else None

    def query(self, pk: str, sk_prefix: str = "") -> list[dict]:
        condition = Key("pk").eq(pk) & Key("sk").begins_with(sk_prefix) if sk_prefix else Key("pk").eq(pk)
        items, kwargs = [], {}
        try:
            while True:
                page = self._table.query(KeyConditionExpression=condition, ConsistentRead=True, **kwargs)
                items.extend(_plain(item) for item in page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    return items
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except ClientError as exc:
            raise StorageError(f"cannot read state {pk}: {exc}") from exc

    def put_new(self, pk: str, sk: str, fields: dict[str, Any]) -> bool:
        """Create a record only if it does not exist yet; False if it did."""
        item = {**_storable(fields), "pk": pk, "sk": sk, "created_at": now_iso(), "updated_at": now_iso()}
        try:
            self._table.put_item(Item=item, ConditionExpression=Attr("pk").not_exists())
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise StorageError(f"cannot write state {pk}: {exc}") from exc
        return True

    def update(self, pk: str, sk: str, fields: dict[str, Any], condition=None, remove: tuple[str, ...] = ()) -> bool:
        """Set ``fields``; False (nothing written) if ``condition`` does not hold."""
        return self._update(pk, sk, fields, condition=condition, remove=remove) is not None

    def delete(self, pk: str, sk: str) -> None:
        try:
            self._table.delete_item(Key={"pk": pk, "sk": sk})
        except ClientError as exc:
            raise StorageError(f"cannot delete state {pk}/{sk}: {exc}") from exc

    def scan_all(self) -> list[dict]:
        items, kwargs = [], {}
        while True:
            page = self._table.scan(ConsistentRead=True, **kwargs)
            items.extend(_plain(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # ------------------------------------------------------------------ files
    def record_file(self, key: str, version: str, **fields: Any) -> None:
        self._update(file_pk(key), f"v#{version}", {"key": key, "version": version, **fields})

    def record_file_received(self, key: str, version: str) -> None:
        """First sight of an upload; a repeated event (a redrive, another notification) changes nothing."""
        fields = {"key": key, "version": version, "status": "received", "received_at": now_iso()}
        self._update(file_pk(key), f"v#{version}", fields, condition=Attr("status").not_exists())

    # ------------------------------------------------------- splits and slides
    def start_patch_conversion(self, owner_pk: str, fields: dict[str, Any], forget: tuple[str, ...] = ()) -> None:
        """Make this upload the owner's current images; progress of any earlier upload is dropped."""
        self._update(
            owner_pk,
            CURRENT,
            {**fields, "status": "converting", "failed_shards": {}},
            remove=("shards_done", "ready_token", "ready_claimer", "failure", *forget),
        )

    def record_labels(self, owner_pk: str, fields: dict[str, Any], forget: tuple[str, ...] = ()) -> None:
        status = {"status": "waiting for images"} if forget else {}
        self._update(owner_pk, CURRENT, {**fields, **status}, remove=("ready_token", "ready_claimer", *forget))

    def record_shard_done(self, owner_pk: str, run_id: str, shard: int) -> dict | None:
        """Count a finished shard (a set, so repeats count once); None if the upload was superseded."""
        return self._update(
            owner_pk, CURRENT, {}, condition=Attr("x_run").eq(run_id), add={"shards_done": {shard}}, return_new=True
        )

    def record_shard_failed(self, owner_pk: str, run_id: str, shard: int, reason: str) -> None:
        self._update(
            owner_pk,
            CURRENT,
            {"status": "failed", "failure": f"shard {shard} failed: {reason}"},
            condition=Attr("x_run").eq(run_id),
            map_entry=("failed_shards", str(shard), reason),
        )

    def claim_ready(self, owner_pk: str, token: str, claimer: str) -> bool:
        """Let exactly one completer announce this combination of inputs (``token``).

        The same claimer may claim again, so a retried message finishes what it started.
        """
        condition = Attr("ready_token").not_exists() | Attr("ready_token").ne(token) | Attr("ready_claimer").eq(claimer)
        return (
            self._update(owner_pk, CURRENT, {"ready_token": token, "ready_claimer": claimer}, condition=condition)
            is not None
        )

    def mark_ready(self, owner_pk: str, fields: dict[str, Any]) -> None:
        self._update(owner_pk, CURRENT, {**fields, "status": "ready", "ready_at": now_iso()})

    def mark_failed(self, owner_pk: str, reason: str) -> None:
        self._update(owner_pk, CURRENT, {"status": "failed", "failure": reason})

"""The state table's storage: the few DynamoDB operations the named reads and writes need.

Writes are conditioned in ``Condition`` terms and described as a ``Change`` (``state/conditions.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from pcam_pipeline.core.errors import RetryableError
from pcam_pipeline.state.conditions import Change, Condition


def now_iso(timespec: str = "milliseconds") -> str:
    return datetime.now(UTC).isoformat(timespec=timespec)


def plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; callers want ints and lists."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, set)):
        return sorted(plain(v) for v in value) if isinstance(value, set) else [plain(v) for v in value]
    return value


def storable(value: Any) -> Any:
    """DynamoDB takes no floats: store them as Decimal (metrics, thresholds)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


# ------------------------------------------------------------------ DynamoDB
class Table(Protocol):
    """The state table's operations: DynamoDB (``DynamoDBTable``) or, in unit tests, a dict (``tests/fakes``)."""

    def get(self, pk: str, sk: str) -> dict[str, Any] | None: ...

    def query(self, pk: str, sk_prefix: str = "") -> list[dict[str, Any]]: ...

    def scan(self) -> list[dict[str, Any]]: ...

    def put_if_absent(self, item: dict[str, Any]) -> bool: ...

    def update(
        self, pk: str, sk: str, change: Change, condition: Condition | None, return_new: bool
    ) -> dict[str, Any] | None:
        """The item as written ({} unless ``return_new``); None when the condition did not hold."""

    def delete(self, pk: str, sk: str) -> None: ...


class DynamoDBTable:
    def __init__(self, table: Any) -> None:  # a boto3 Table resource
        self._table = table

    def _call(self, what: str, operation: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return operation(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise RetryableError(f"cannot {what} the state table: {exc}") from exc

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self._call("read", self._table.get_item, Key={"pk": pk, "sk": sk}, ConsistentRead=True)
        return plain(response["Item"]) if response and "Item" in response else None

    def _pages(self, operation: Callable[..., Any], **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self._call("read", operation, ConsistentRead=True, **kwargs)
            items.extend(plain(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def query(self, pk: str, sk_prefix: str = "") -> list[dict[str, Any]]:
        condition = Key("pk").eq(pk) & Key("sk").begins_with(sk_prefix) if sk_prefix else Key("pk").eq(pk)
        return self._pages(self._table.query, KeyConditionExpression=condition)

    def scan(self) -> list[dict[str, Any]]:
        return self._pages(self._table.scan)

    def put_if_absent(self, item: dict[str, Any]) -> bool:
        kwargs = {"Item": storable(item), "ConditionExpression": Attr("pk").not_exists()}
        return self._call("write", self._table.put_item, **kwargs) is not None

    def update(
        self, pk: str, sk: str, change: Change, condition: Condition | None, return_new: bool
    ) -> dict[str, Any] | None:
        # Placeholders avoid #n/:v, which boto3 uses for the condition expression.
        names = {f"#s{i}": name for i, name in enumerate(change.sets)}
        values = {f":s{i}": storable(value) for i, value in enumerate(change.sets.values())}
        parts = [f"#s{i} = :s{i}" for i in range(len(change.sets))]
        if change.map_entry is not None:
            map_name, entry, value = change.map_entry
            names.update({"#map": map_name, "#entry": entry})
            values[":entry"] = value
            parts.append("#map.#entry = :entry")
        expression = "SET " + ", ".join(parts)
        if change.add:
            names.update({f"#a{i}": name for i, name in enumerate(change.add)})
            values.update({f":a{i}": value for i, value in enumerate(change.add.values())})
            expression += " ADD " + ", ".join(f"#a{i} :a{i}" for i in range(len(change.add)))
        # Placeholders for removed names too: some attribute names are reserved words in expressions ("until").
        names.update({f"#r{i}": name for i, name in enumerate(change.remove)})
        removed = [f"#r{i}" for i in range(len(change.remove))]
        if change.map_entry_removed is not None:
            names.update({"#rmap": change.map_entry_removed[0], "#rentry": change.map_entry_removed[1]})
            removed.append("#rmap.#rentry")
        if removed:
            expression += " REMOVE " + ", ".join(removed)
        kwargs: dict[str, Any] = {
            "Key": {"pk": pk, "sk": sk},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if condition is not None:
            kwargs["ConditionExpression"] = condition.expression()
        if return_new:
            kwargs["ReturnValues"] = "ALL_NEW"
        response = self._call("write", self._table.update_item, **kwargs)
        if response is None:
            return None
        return plain(response.get("Attributes", {})) if return_new else {}

    def delete(self, pk: str, sk: str) -> None:
        self._call("write", self._table.delete_item, Key={"pk": pk, "sk": sk})

"""What a state-table write may change and when: a ``Condition`` translates to a DynamoDB condition expression
and can also be evaluated against an item, so tests run the same logic on an in-memory table (``tests/fakes.py``)
that a contract test holds to DynamoDB's behaviour; a ``Change`` is one UpdateItem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.conditions import Attr, ConditionBase


class Condition:
    def holds(self, item: dict[str, Any] | None) -> bool:
        raise NotImplementedError

    def expression(self) -> ConditionBase:
        """The condition as boto3 writes it into a ConditionExpression."""
        raise NotImplementedError

    def __or__(self, other: Condition) -> Condition:
        return Either(self, other)

    def __and__(self, other: Condition) -> Condition:
        return Both(self, other)

    def __invert__(self) -> Condition:
        return Not(self)


@dataclass(frozen=True)
class Equals(Condition):
    name: str
    value: Any

    def holds(self, item: dict[str, Any] | None) -> bool:
        return item is not None and self.name in item and item[self.name] == self.value

    def expression(self) -> ConditionBase:
        return Attr(self.name).eq(self.value)


@dataclass(frozen=True)
class OneOf(Condition):
    name: str
    values: tuple[Any, ...]

    def holds(self, item: dict[str, Any] | None) -> bool:
        return item is not None and item.get(self.name) in self.values

    def expression(self) -> ConditionBase:
        return Attr(self.name).is_in(list(self.values))


@dataclass(frozen=True)
class Before(Condition):
    """The attribute exists and sorts before ``value`` (ISO times in UTC sort as they happen)."""

    name: str
    value: Any

    def holds(self, item: dict[str, Any] | None) -> bool:
        return item is not None and self.name in item and item[self.name] < self.value

    def expression(self) -> ConditionBase:
        return Attr(self.name).lt(self.value)


@dataclass(frozen=True)
class Missing(Condition):
    name: str

    def holds(self, item: dict[str, Any] | None) -> bool:
        return item is None or self.name not in item

    def expression(self) -> ConditionBase:
        return Attr(self.name).not_exists()


@dataclass(frozen=True)
class Not(Condition):
    inner: Condition

    def holds(self, item: dict[str, Any] | None) -> bool:
        return not self.inner.holds(item)

    def expression(self) -> ConditionBase:
        return ~self.inner.expression()


@dataclass(frozen=True)
class Either(Condition):
    left: Condition
    right: Condition

    def holds(self, item: dict[str, Any] | None) -> bool:
        return self.left.holds(item) or self.right.holds(item)

    def expression(self) -> ConditionBase:
        return self.left.expression() | self.right.expression()


@dataclass(frozen=True)
class Both(Condition):
    left: Condition
    right: Condition

    def holds(self, item: dict[str, Any] | None) -> bool:
        return self.left.holds(item) and self.right.holds(item)

    def expression(self) -> ConditionBase:
        return self.left.expression() & self.right.expression()


# ------------------------------------------------------------------ changes
@dataclass(frozen=True)
class Change:
    """One UpdateItem: set attributes, add to number sets, remove attributes, set one entry of a map."""

    sets: dict[str, Any] = field(default_factory=dict)
    add: dict[str, set[Any]] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    map_entry: tuple[str, str, Any] | None = None
    map_entry_removed: tuple[str, str] | None = None

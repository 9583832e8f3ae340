"""Keyset (seek) chunk planning over a unique, ordered key.

Each chunk is "the next ``n`` keys after the cursor, up to the high-water mark", fetched as
keys only, so memory is O(n) and every page costs one index range scan however deep into
the table it is (OFFSET would rescan everything before it: see docs/decisions.md).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import QuerySet

from batchjobs.bulk import update_by_key
from batchjobs.exceptions import JobDefinitionError


def check_queryset(queryset: QuerySet[Any]) -> None:
    """The library owns the ordering and the slicing; refuse a queryset that sets either."""
    query = queryset.query
    if query.low_mark or query.high_mark is not None:
        raise JobDefinitionError(
            "The job's queryset is sliced; return the whole queryset and let the runner chunk it."
        )
    if query.order_by:
        raise JobDefinitionError(
            "The job's queryset is ordered (order_by); drop the ordering: the runner orders "
            "by the key to seek through it."
        )
    if query.distinct or query.combinator:
        raise JobDefinitionError(
            "The job's queryset uses distinct() or a set operation; filter rows instead."
        )


def key_field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    """Resolve the key and insist that it is unique and not null: seeking needs both.

    A key that is no field at all (a typo) is a ``JobDefinitionError`` like the others,
    naming the fields that could be the key, rather than Django's ``FieldDoesNotExist``.
    """
    try:
        field_ = model._meta.pk if name == "pk" else model._meta.get_field(name)
    except FieldDoesNotExist:
        fields = [f for f in model._meta.get_fields() if isinstance(f, models.Field)]
        keys = [f.name for f in fields if (f.primary_key or f.unique) and not f.null]
        close = difflib.get_close_matches(name, [f.name for f in fields], n=1)
        guess = f"did you mean {close[0]!r}? " if close else ""
        raise JobDefinitionError(
            f"the job's key: {model.__name__} has no field named {name!r}; {guess}fields "
            f"that can be the key (unique, not null): {', '.join(['pk', *keys[:5]])}"
        ) from None
    if not isinstance(field_, models.Field) or not (field_.primary_key or field_.unique):
        raise JobDefinitionError(f"key {name!r} of {model.__name__} must be a unique field")
    if field_.null:
        raise JobDefinitionError(f"key {name!r} of {model.__name__} must not be nullable")
    return field_


@dataclass(frozen=True)
class Keyset:
    """The job's rows, seen as an ordered sequence of keys up to ``upto`` (inclusive)."""

    queryset: QuerySet[Any]
    key: str
    upto: Any
    _field: models.Field[Any, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_field", key_field(self.queryset.model, self.key))

    @property
    def name(self) -> str:
        return self._field.name

    def bounded(self) -> QuerySet[Any]:
        qs = self.queryset
        return qs if self.upto is None else qs.filter(**{f"{self.name}__lte": self.upto})

    def next_keys(self, *, after: Any, limit: int) -> list[Any]:
        """The next ``limit`` keys after ``after`` (``None``: from the start), in order."""
        if self.upto is None:
            return []
        qs = self.bounded()
        if after is not None:
            qs = qs.filter(**{f"{self.name}__gt": after})
        return list(qs.order_by(self.name).values_list(self.name, flat=True)[:limit])

    def next_range(self, *, after: Any, limit: int) -> tuple[Any, int] | None:
        """``(last key, rows)`` of the next ``limit`` rows after ``after``, without fetching
        their keys: for SQL-side chunks, where only the range's end is needed."""
        if self.upto is None:
            return None
        qs = self.bounded()
        if after is not None:
            qs = qs.filter(**{f"{self.name}__gt": after})
        ordered = qs.order_by(self.name).values_list(self.name, flat=True)
        last = ordered[limit - 1 : limit].first()  # OFFSET limit-1 LIMIT 1 on the index
        if last is not None:
            return last, limit
        rows = qs.count()
        if not rows:
            return None
        return qs.order_by(f"-{self.name}").values_list(self.name, flat=True).first(), rows

    def between(self, after: Any, last: Any) -> QuerySet[Any]:
        """The job's rows after ``after`` (exclusive) up to ``last`` (inclusive)."""
        qs = self.queryset.filter(**{f"{self.name}__lte": last})
        return qs if after is None else qs.filter(**{f"{self.name}__gt": after})

    def range(self, first: Any, last: Any) -> QuerySet[Any]:
        """The job's rows between two keys, both included."""
        return self.queryset.filter(**{f"{self.name}__gte": first, f"{self.name}__lte": last})

    def encode(self, value: Any) -> Any:
        """A key as JSON for the checkpoint (UUIDs and the like become strings)."""
        if value is None or isinstance(value, int | str):
            return value
        return str(value)

    def decode(self, value: Any) -> Any:
        return None if value is None else self._field.to_python(value)


def high_water_mark(queryset: QuerySet[Any], key: str) -> Any:
    """The largest key now: rows created later are not this run's (they have fresh values)."""
    name = key_field(queryset.model, key).name
    # ORDER BY key DESC LIMIT 1 reads one index entry and works for every ordered type
    # (PostgreSQL has no max(uuid)).
    return queryset.order_by(f"-{name}").values_list(name, flat=True).first()


@dataclass(frozen=True)
class Chunk:
    """One chunk of keys handed to a job's ``process``; it commits or rolls back whole."""

    keys: Sequence[Any]
    keyset: Keyset

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def first(self) -> Any:
        return self.keys[0]

    @property
    def last(self) -> Any:
        return self.keys[-1]

    @property
    def model(self) -> type[models.Model]:
        return self.keyset.queryset.model

    @property
    def queryset(self) -> QuerySet[Any]:
        """The job's rows in this chunk's key range (for ranged, SQL-side updates)."""
        return self.keyset.range(self.first, self.last)

    def update(self, **values: Any) -> int:
        """Set columns on this chunk's rows: a list gives one value per key (in key order),
        anything else (a constant or a database expression) applies to every row."""
        return update_by_key(
            self.model,
            key=self.keyset.name,
            keys=self.keys,
            values=values,
            bounds=(self.first, self.last),
        )

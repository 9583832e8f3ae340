"""``Chunk``: the keys of one chunk, handed to a job's ``process()``, and how to write to
them and record outside effects for them. It commits or rolls back whole, together with the
checkpoint and the effects recorded (batchjobs.unit)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import models
from django.db.models import QuerySet

from batchjobs.bulk import update_by_key
from batchjobs.exceptions import JobDefinitionError
from batchjobs.keyset import Keyset


@dataclass(frozen=True)
class Chunk:
    """One chunk of keys handed to a job's ``process``; it commits or rolls back whole."""

    keys: Sequence[Any]
    keyset: Keyset
    # The effects ``effect()`` recorded, for the unit to write in this chunk's transaction;
    # ``None``: the job has no ``deliver()``, so it may record none.
    effects: list[tuple[Any, Any]] | None = field(default=None, compare=False, repr=False)

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
    def queryset(self) -> QuerySet[models.Model]:
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

    def effect(self, key: Any, payload: Any = None) -> None:
        """Owe an outside effect for ``key`` (a key of this chunk, usually): it is written
        with the chunk and delivered by the job's ``deliver()`` after the COMMIT, at least
        once, with an idempotency key made of the run and ``key``. ``payload`` is JSON."""
        if self.effects is None:
            raise JobDefinitionError(
                f"{self.model.__name__}'s job records effects but has no deliver(); "
                "implement deliver(self, delivery) to do them."
            )
        self.effects.append((key, {} if payload is None else payload))

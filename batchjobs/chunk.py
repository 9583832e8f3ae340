"""``Chunk``: the keys of one chunk, handed to a job's ``process()``, and how to write to
them. It commits or rolls back whole, together with the checkpoint (batchjobs.unit)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.db.models import QuerySet

from batchjobs.bulk import update_by_key
from batchjobs.keyset import Keyset


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

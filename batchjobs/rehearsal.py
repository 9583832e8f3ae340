"""``--dry-run``: run the job for real on a sample inside a transaction that is rolled back.

It reports what a plan cannot: how many rows the job's code really changes, whether it
hits a constraint (a uniqueness collision), and the measured time per row, projected to
the whole run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, router, transaction

from batchjobs import retry
from batchjobs.job import ResumableJob
from batchjobs.keyset import Chunk, Keyset, check_queryset, high_water_mark


@dataclass(frozen=True)
class Rehearsal:
    sample: int
    changed: int | None
    total: int
    seconds: float
    error: str | None

    @property
    def seconds_per_row(self) -> float | None:
        return self.seconds / self.sample if self.sample else None

    @property
    def projected_seconds(self) -> float | None:
        per_row = self.seconds_per_row
        return None if per_row is None else per_row * self.total


def rehearse(job: ResumableJob, *, sample: int) -> Rehearsal:
    queryset = job.get_queryset()
    check_queryset(queryset)
    alias = router.db_for_write(queryset.model)
    hwm = high_water_mark(queryset, job.key)
    keyset = Keyset(queryset, job.key, hwm)
    total = keyset.bounded().count() if hwm is not None else 0
    error: str | None = None
    changed: Any = None
    keys: list[Any] = []
    elapsed = 0.0
    with transaction.atomic(using=alias):
        keys = keyset.next_keys(after=None, limit=sample)
        if keys:
            started = time.perf_counter()
            try:
                with transaction.atomic(using=alias):
                    changed = job.process(Chunk(keys=keys, keyset=keyset))
            except DatabaseError as exc:
                error = " ".join(retry.describe(exc)[::-1])
            elapsed = time.perf_counter() - started
            if changed is None and error is None:
                changed = len(keys)
        transaction.set_rollback(True, using=alias)
    return Rehearsal(sample=len(keys), changed=changed, total=total, seconds=elapsed, error=error)

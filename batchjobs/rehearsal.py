"""``--dry-run``: run the job for real on a sample inside a transaction that is rolled back.

It reports what a plan cannot: how many rows the job's code really changes, whether it
hits a constraint (a uniqueness collision) or raises, and the measured time per row,
projected to the whole run. It takes the same per-chunk timeouts as a run, and the sample's
rows stay locked only while it lasts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.db import connections, router, transaction

from batchjobs import conf, retry
from batchjobs.database import set_local_timeouts
from batchjobs.exceptions import InvalidOption
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


def rehearse(
    job: ResumableJob,
    *,
    sample: int,
    sql_side: bool = False,
    statement_timeout: float | None = None,
    lock_timeout: float | None = None,
) -> Rehearsal:
    queryset = job.get_queryset()
    check_queryset(queryset)
    alias = router.db_for_write(queryset.model)
    connection = connections[alias]
    sql_values = job.sql_values(connection) if sql_side else None
    if sql_side and not sql_values:
        raise InvalidOption(f"{job.name} has no SQL-side values on {connection.vendor}.")
    settings = conf.get()
    hwm = high_water_mark(queryset, job.key)
    keyset = Keyset(queryset, job.key, hwm)
    total = keyset.bounded().count() if hwm is not None else 0
    error: str | None = None
    changed: Any = None
    keys: list[Any] = []
    elapsed = 0.0
    with transaction.atomic(using=alias):
        set_local_timeouts(
            connection,
            statement_seconds=statement_timeout or settings.STATEMENT_TIMEOUT_SECONDS,
            lock_seconds=lock_timeout or settings.LOCK_TIMEOUT_SECONDS,
        )
        keys = keyset.next_keys(after=None, limit=sample)
        if keys:
            chunk = Chunk(keys=keys, keyset=keyset)
            started = time.perf_counter()
            try:
                with transaction.atomic(using=alias):
                    if sql_values is not None:
                        changed = chunk.queryset.update(**sql_values)
                    else:
                        changed = _process_rehearsing(job, chunk)
            except Exception as exc:
                error_class, message = retry.describe(exc)
                error = f"{message} ({error_class})"
            elapsed = time.perf_counter() - started
            if changed is None and error is None:
                changed = len(keys)
        transaction.set_rollback(True, using=alias)
    return Rehearsal(sample=len(keys), changed=changed, total=total, seconds=elapsed, error=error)


def _process_rehearsing(job: ResumableJob, chunk: Chunk) -> Any:
    """``job.process(chunk)`` with ``job.rehearsing`` set: the rollback undoes database
    writes only, so a job with outside effects must be able to tell."""
    job.rehearsing = True
    try:
        return job.process(chunk)
    finally:
        job.rehearsing = False

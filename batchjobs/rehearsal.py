"""``--dry-run``: run the job for real on a sample inside a transaction that is rolled back.

It reports what a plan cannot: how many rows the job's code really changes, whether it
hits a constraint (a uniqueness collision) or raises, and the measured time per row,
projected to the whole run.

It is the chunk unit (``ChunkUnit``) in its rollback mode: every query of it (the
high-water mark, the count, the sample's keys, the job's writes) runs in that one
transaction, under the same statement and lock timeouts as a run's chunk, and the sample
is at most one chunk of the largest size, so the sample's rows stay locked briefly. A
rehearsal has nothing to keep, so the first SIGINT, SIGTERM or SIGHUP stops it at once
(a ``Stopper`` with no patience): the statement in flight is cancelled and the
transaction rolled back.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, replace

from django.db import connections, router, transaction

from batchjobs import conf, retry
from batchjobs.chunk import Chunk
from batchjobs.database import cancel_statement
from batchjobs.exceptions import BatchJobError, InvalidOption
from batchjobs.job import ResumableJob
from batchjobs.keyset import Keyset, check_queryset, high_water_mark
from batchjobs.options import RunOptions, Timeouts
from batchjobs.stopping import EXIT_CODE_FOR_SIGNAL, ForcedStop, Stopper
from batchjobs.unit import ChunkUnit


class RehearsalStopped(BatchJobError):
    """The dry run was stopped by a signal; nothing was changed."""

    def __init__(self, message: str, *, signum: int) -> None:
        super().__init__(message)
        self.exit_code = EXIT_CODE_FOR_SIGNAL.get(signal.Signals(signum), 130)


class RehearsalTimedOut(BatchJobError):
    """The dry run waited longer than its lock or statement timeout; nothing was changed."""


@dataclass(frozen=True)
class Rehearsal:
    sample: int
    changed: int | None
    total: int
    seconds: float
    error: str | None
    # The largest chunk, when the sample asked for was larger (None: not capped).
    capped_at: int | None = None
    # Outside effects the sample's process() asked for: never recorded, never delivered.
    effects: int = 0

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
    """Rehearse ``job`` on its first ``sample`` rows (at most the largest chunk).

    Raises ``RehearsalTimedOut`` when the database kept it waiting past a timeout outside
    the job's own code, and ``RehearsalStopped`` on a stop signal; an error of the job's
    code (a constraint it hits) is reported in the result instead.
    """
    queryset = job.get_queryset()
    check_queryset(queryset)
    connection = connections[router.db_for_write(queryset.model)]
    sql_values = job.sql_values(connection) if sql_side else None
    if sql_side and not sql_values:
        raise InvalidOption(f"{job.name} has no SQL-side values on {connection.vendor}.")
    settings = conf.get()
    options = RunOptions(
        statement_timeout=statement_timeout, lock_timeout=lock_timeout, sql_side=sql_side
    )
    # One chunk's worth, as a run would take: --batch-size 1000000000 must not lock (and
    # hold for the length of the rehearsal) every row of the table.
    largest = options.chunk_sizer(settings).maximum
    stopper = Stopper(patience=0)
    unit = ChunkUnit(
        job=job,
        keyset=Keyset(queryset, job.key, None),
        connection=connection,
        stopper=stopper,
        timeouts=options.timeouts(settings),
        clock=time.perf_counter,
        sql_values=sql_values,
    )
    try:
        with stopper.installed(on_force=lambda: cancel_statement(connection)):
            result = _rehearse_in_transaction(unit, min(sample, largest))
    except ForcedStop as stop:
        raise _stopped(job, stop.signum) from None
    except Exception as exc:
        # Whatever a stop signal cut short (a cancelled statement) is that stop.
        if stopper.signum is not None:
            raise _stopped(job, stopper.signum) from None
        timed_out = _timed_out(job, exc, unit.timeouts)
        if timed_out is not None:
            raise timed_out from None
        raise
    return replace(result, capped_at=largest if sample > largest else None)


def _rehearse_in_transaction(unit: ChunkUnit, sample: int) -> Rehearsal:
    job, alias = unit.job, unit.connection.alias
    error: str | None = None
    changed: int | None = None
    elapsed = 0.0
    with unit.transaction(rollback=True):
        # Everything inside: even the high-water mark waits behind an ACCESS EXCLUSIVE lock.
        queryset = unit.keyset.queryset
        keyset = Keyset(queryset, job.key, high_water_mark(queryset, job.key))
        total = keyset.bounded().count() if keyset.upto is not None else 0
        keys = keyset.next_keys(after=None, limit=sample)
        if keys:
            started = time.perf_counter()
            try:
                with transaction.atomic(using=alias):  # the job's error is reported, not raised
                    changed = _process_rehearsing(unit, Chunk(keys=keys, keyset=keyset))
            except Exception as exc:
                error_class, message = retry.describe(exc)
                error = f"{message} ({error_class})"
            elapsed = time.perf_counter() - started
            if changed is None and error is None:
                changed = len(keys)
    return Rehearsal(
        sample=len(keys),
        changed=changed,
        total=total,
        seconds=elapsed,
        error=error,
        effects=unit.effects_seen,
    )


def _process_rehearsing(unit: ChunkUnit, chunk: Chunk) -> int | None:
    """The unit's work with ``job.rehearsing`` set: the rollback undoes database writes
    only, so a job with outside effects must be able to tell."""
    unit.job.rehearsing = True
    try:
        return unit.process(chunk)
    finally:
        unit.job.rehearsing = False


def _stopped(job: ResumableJob, signum: int) -> RehearsalStopped:
    name = signal.Signals(signum).name
    return RehearsalStopped(
        f"Dry run of {job.name} stopped by {name}; nothing was changed.", signum=signum
    )


def _timed_out(job: ResumableJob, exc: Exception, timeouts: Timeouts) -> RehearsalTimedOut | None:
    kind = retry.classify(exc)
    if kind in (retry.ErrorKind.LOCK_TIMEOUT, retry.ErrorKind.DATABASE_BUSY):
        waited = (
            f"{timeouts.lock:g}s (--lock-timeout)"
            if kind is retry.ErrorKind.LOCK_TIMEOUT
            else "the database's busy timeout"
        )
        return RehearsalTimedOut(
            f"Dry run of {job.name} gave up waiting for a lock after {waited}: another "
            "session holds a lock on its table or rows. Nothing was changed; try again "
            "later, or wait longer with --lock-timeout."
        )
    if kind is retry.ErrorKind.STATEMENT_TIMEOUT:
        return RehearsalTimedOut(
            f"A statement of the dry run of {job.name} ran longer than {timeouts.statement:g}s "
            "(--statement-timeout) and was cancelled; nothing was changed. Counting a large "
            "table can take that long: allow more with --statement-timeout."
        )
    return None

"""``--dry-run``: run the job for real on a sample inside a transaction that is rolled back.

It reports what a plan cannot: how many rows the job's code really changes, whether it
hits a constraint (a uniqueness collision) or raises, and the measured time per row,
projected to the whole run.

Every query of it (the high-water mark, the count, the sample's keys, the job's writes)
runs in that one transaction, under the same statement and lock timeouts as a run's chunk,
and the sample is at most one chunk of the largest size, so the sample's rows stay locked
briefly. A rehearsal has nothing to keep, so the first SIGINT, SIGTERM or SIGHUP stops it
at once: the statement in flight is cancelled and the transaction rolled back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

from django.db import connections, router, transaction

from batchjobs import conf, retry
from batchjobs.chunk import Chunk
from batchjobs.database import set_local_timeouts
from batchjobs.exceptions import BatchJobError, InvalidOption
from batchjobs.job import ResumableJob
from batchjobs.keyset import Keyset, check_queryset, high_water_mark
from batchjobs.stopping import EXIT_CODE_FOR_SIGNAL


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
    alias = router.db_for_write(queryset.model)
    connection = connections[alias]
    sql_values = job.sql_values(connection) if sql_side else None
    if sql_side and not sql_values:
        raise InvalidOption(f"{job.name} has no SQL-side values on {connection.vendor}.")
    settings = conf.get()
    # One chunk's worth, as a run would take: --batch-size 1000000000 must not lock (and
    # hold for the length of the rehearsal) every row of the table.
    largest = settings.MAX_SQL_SIDE_CHUNK_SIZE if sql_side else settings.MAX_CHUNK_SIZE
    capped_at = largest if sample > largest else None
    timeouts = _Timeouts(
        statement=statement_timeout or settings.STATEMENT_TIMEOUT_SECONDS,
        lock=lock_timeout or settings.LOCK_TIMEOUT_SECONDS,
    )
    with _stopped_by_signals(cancel=lambda: _cancel(connection)) as stop:
        try:
            try:
                result = _rehearse_in_transaction(
                    job, queryset, min(sample, largest), sql_values, timeouts, alias
                )
            except Exception as exc:
                timed_out = None if stop.signum else _timed_out(job, exc, timeouts)
                if timed_out is not None:
                    raise timed_out from None
                raise
        except BaseException:
            # Whatever a stop signal cut short (a cancelled statement, the handler's own
            # exception, even while the first error was being handled) is one stop.
            if stop.signum is None:
                raise
            raise _stopped(job, stop.signum) from None
        if stop.signum is not None:
            raise _stopped(job, stop.signum)
    return Rehearsal(**result, capped_at=capped_at)


@dataclass(frozen=True)
class _Timeouts:
    statement: float
    lock: float


def _rehearse_in_transaction(
    job: ResumableJob,
    queryset: Any,
    sample: int,
    sql_values: dict[str, Any] | None,
    timeouts: _Timeouts,
    alias: str,
) -> dict[str, Any]:
    connection = connections[alias]
    error: str | None = None
    changed: Any = None
    keys: list[Any] = []
    elapsed = 0.0
    with transaction.atomic(using=alias):
        # First: even the high-water mark waits on a lock behind an ACCESS EXCLUSIVE one.
        set_local_timeouts(
            connection, statement_seconds=timeouts.statement, lock_seconds=timeouts.lock
        )
        hwm = high_water_mark(queryset, job.key)
        keyset = Keyset(queryset, job.key, hwm)
        total = keyset.bounded().count() if hwm is not None else 0
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
    return {
        "sample": len(keys),
        "changed": changed,
        "total": total,
        "seconds": elapsed,
        "error": error,
    }


def _process_rehearsing(job: ResumableJob, chunk: Chunk) -> Any:
    """``job.process(chunk)`` with ``job.rehearsing`` set: the rollback undoes database
    writes only, so a job with outside effects must be able to tell."""
    job.rehearsing = True
    try:
        return job.process(chunk)
    finally:
        job.rehearsing = False


def _stopped(job: ResumableJob, signum: int) -> RehearsalStopped:
    name = signal.Signals(signum).name
    return RehearsalStopped(
        f"Dry run of {job.name} stopped by {name}; nothing was changed.", signum=signum
    )


def _timed_out(job: ResumableJob, exc: Exception, timeouts: _Timeouts) -> RehearsalTimedOut | None:
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


def _cancel(connection: Any) -> None:
    """Cancel the statement in flight, from another thread (psycopg2's ``cancel`` and
    sqlite3's ``interrupt`` are both safe to call so)."""
    raw = connection.connection
    cancel = getattr(raw, "cancel", None) or getattr(raw, "interrupt", None)
    if cancel is not None:
        with contextlib.suppress(Exception):
            cancel()


class _Interrupted(BaseException):
    """Raised in the main thread by the first stop signal (not an ``Exception``: a job's
    ``except Exception`` must not swallow it)."""


@dataclass
class _Stop:
    signum: int | None = None
    raised: bool = False


@contextlib.contextmanager
def _stopped_by_signals(cancel: Callable[[], None]) -> Iterator[_Stop]:
    """For the rehearsal's duration, the first SIGINT/SIGTERM/SIGHUP stops it at once.

    Python runs a handler only when the main thread is back in bytecode, not while it
    waits in a driver call (a lock wait), so a watcher thread also sees the signal, through
    the wakeup fd, and cancels the statement in flight; the handler then raises in the main
    thread. Later signals are only noted: they must not tear the rollback. Unlike a run's
    ``Stopper``, which lets the chunk in flight commit, there is nothing here to keep.
    Handlers and the wakeup fd are restored on exit.
    """
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals can only be handled on the main thread
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.signum is None:
            stop.signum = signum
        if not stop.raised:
            stop.raised = True
            raise _Interrupted

    def watch(read_fd: int) -> None:
        cancelled = False
        while data := os.read(read_fd, 64):
            signums = [s for s in data if s in EXIT_CODE_FOR_SIGNAL]
            if signums and not cancelled:
                if stop.signum is None:
                    stop.signum = signums[0]
                cancel()
                cancelled = True

    previous = {sig: signal.signal(sig, handle) for sig in EXIT_CODE_FOR_SIGNAL}
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    watcher = threading.Thread(target=watch, args=(read_fd,), name="dry-run-signals", daemon=True)
    watcher.start()
    try:
        yield stop
    finally:
        signal.set_wakeup_fd(previous_fd)
        os.close(write_fd)
        watcher.join(timeout=1)
        os.close(read_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)

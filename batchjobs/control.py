"""Operator controls from another terminal or the admin: pause, cancel, live tuning.

A live run notices a request at its next chunk boundary (the request is read inside the
chunk's transaction). A run with no live process is changed at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from batchjobs import options, slice_store, store
from batchjobs.claim import os_user
from batchjobs.database import set_local_timeouts
from batchjobs.exceptions import InvalidOption, RunBusy, RunNotResumable
from batchjobs.lease import Owner, alive, ended_by
from batchjobs.models import JobRun, State
from batchjobs.retry import ErrorKind, classify, explain

TUNABLE = ("sleep", "batch_size", "target_chunk_seconds")


def display_state(run: JobRun) -> str:
    """The state an operator should see: a running run whose process is gone is stalled."""
    if run.state == State.RUNNING and not alive(run):
        return "stalled"
    if run.state == State.RUNNING and run.requested_action:
        return f"running ({run.requested_action} requested)"
    return str(run.state)


def _unfinished(job: str) -> JobRun:
    # The runner holds the run row only for one chunk; never wait long behind a lost host.
    set_local_timeouts(connection, statement_seconds=None, lock_seconds=5.0)
    run = store.unfinished(job, lock=True)
    if run is None:
        raise RunNotResumable(f"{job} has no unfinished run.")
    return run


# An operator's request waits this long for SQLite's write lock (a run's connection waits
# 20 s): a chunk holds it for a moment, so longer means another writer is stuck.
_SQLITE_WAIT_SECONDS = 5


@contextmanager
def _answered_when_busy(job: str) -> Iterator[None]:
    """Turn every database error into a one-line answer: a run row that stays locked
    past the wait, a SQLite file another process keeps write-locked, a missing privilege
    or table (``retry.explain`` says which)."""
    try:
        with _sqlite_wait(_SQLITE_WAIT_SECONDS):
            yield
    except DatabaseError as exc:
        kind = classify(exc)
        if kind is ErrorKind.LOCK_TIMEOUT:
            run = store.unfinished(job)
            raise RunBusy(
                f"Run #{run.pk if run else '?'} of {job} has held its row for over 5 s (a "
                "long chunk, or a lost host's open transaction); try again in a moment."
            ) from None
        if kind is ErrorKind.DATABASE_BUSY:
            raise RunBusy(
                f"Nothing was asked of {job}: another process has held the SQLite database's "
                f"write lock for over {_SQLITE_WAIT_SECONDS} s; try again in a moment."
            ) from None
        raise explain(exc, doing=f"Nothing was asked of {job}") from None


@contextmanager
def _sqlite_wait(seconds: float) -> Iterator[None]:
    """SQLite's wait for the write lock, shortened for this block (``busy_timeout`` is per
    connection, and the connection outlives the request: the old value is put back)."""
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        before = cursor.fetchone()[0]
        cursor.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA busy_timeout = {int(before)}")


def request(job: str, action: str) -> str:
    """Ask for ``pause`` or ``cancel``; return one sentence saying what happened."""
    target = {"pause": State.PAUSED, "cancel": State.CANCELLED}[action]
    with _answered_when_busy(job), transaction.atomic():
        run = _unfinished(job)
        if run.state == target:
            return f"Run #{run.pk} of {job} is already {target}."
        if alive(run):
            store.request_action(run, action)
            return (
                f"Asked run #{run.pk} of {job} ({slice_store.who(run)}) to "
                f"{action}; it will at its next chunk boundary."
            )
        fields: dict[str, Any] = {
            "requested_action": "",
            "stats": {**run.stats, "ended_by": ended_by(action, Owner.current(), os_user())},
        }
        if target == State.CANCELLED:
            fields["finished_at"] = timezone.now()
        # Through the transitions table, fenced on the state and owner just read; leaving
        # RUNNING clears the owner, so a frozen process that wakes up writes nothing.
        store.transition(run, target, **fields)
        return f"Run #{run.pk} of {job} had no live process and is now {target}."


def tune(job: str, **values: Any) -> str:
    """Change sleep, chunk size or target chunk time of a run while it goes."""
    changes = {k: v for k, v in values.items() if k in TUNABLE and v is not None}
    try:  # the admin hands over JSON: make the types what the runner reads
        changes = {k: int(v) if k == "batch_size" else float(v) for k, v in changes.items()}
    except (TypeError, ValueError):
        raise InvalidOption(f"tuning values must be numbers: {changes}") from None
    if not changes:
        raise InvalidOption("--tune needs --sleep, --batch-size or --target-chunk-seconds.")
    for name, value in changes.items():
        try:
            options.check(name, value)
        except InvalidOption as exc:
            raise InvalidOption(f"--{name.replace('_', '-')}: {exc}") from None
    with _answered_when_busy(job), transaction.atomic():
        run = _unfinished(job)
        if not alive(run):
            # Tuning belongs to a live session; a new one starts from its own command line.
            raise RunNotResumable(
                f"Run #{run.pk} of {job} has no live process to tune; pass the options to "
                f"`runjob {job}` when you resume it."
            )
        tuning = {**run.tuning, **changes}
        if "batch_size" in changes:
            tuning.pop("target_chunk_seconds", None)
        elif "target_chunk_seconds" in changes:
            tuning.pop("batch_size", None)
        store.set_tuning(run, tuning)
    said = ", ".join(f"{k}={v}" for k, v in changes.items())
    return f"Run #{run.pk} of {job} will use {said} from its next chunk."

"""The only code that reads or writes runs (``JobRun``) and their quarantined rows.

Two faces. ``RunStore`` is one run as the process that owns it sees it: every write is
fenced on the owner (``owner_token``) AND the state (RUNNING), so a run restarted,
cancelled, paused or taken over by another process matches no row and nothing lands; the
old process gets ``LeaseLost`` with a sentence saying what became of its run. The module
functions serve those that do not own a run yet (claiming it, or an operator steering it
from another terminal or the admin): every state change goes through ``transition``,
checked against the transitions table and fenced on the state and owner it read.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, transaction
from django.db.models import F, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from batchjobs.exceptions import LeaseLost
from batchjobs.lease import Owner, lost_lease_message
from batchjobs.models import (
    UNFINISHED,
    JobRun,
    JobSlice,
    QuarantinedRow,
    State,
    check_transition,
)

_RETRIES_KEPT = 100  # the audit trail keeps the newest retries: when, where and why
_SESSIONS_KEPT = 50  # and the newest sessions: who worked on the run, where, with what


@dataclass(frozen=True)
class Controls:
    """What an operator asked of a run: pause or cancel, and live tuning."""

    requested_action: str = ""
    tuning: dict[str, Any] = field(default_factory=dict)


class RunStore:
    def __init__(self, *, alias: str, run_id: int, job: str, owner: Owner) -> None:
        self.alias = alias
        self.run_id = run_id
        self.job = job
        self.owner = owner
        self._retries = 0
        self._retry_notes: list[dict[str, Any]] = []

    # -- reads -------------------------------------------------------------------------

    def read(self) -> JobRun:
        return JobRun.objects.using(self.alias).get(pk=self.run_id)

    def cursor(self) -> Any:
        """The checkpoint as stored (JSON), read without a lock."""
        row = JobRun.objects.using(self.alias).filter(pk=self.run_id).values("cursor").first()
        return row["cursor"] if row else None

    def recorded_done(self) -> int | None:
        """Rows done as the run row records them (``None``: it could not be read)."""
        with contextlib.suppress(DatabaseError):
            row = JobRun.objects.using(self.alias).filter(pk=self.run_id).values("done").first()
            if row is not None:
                return int(row["done"])
        return None

    def controls(self) -> Controls | None:
        row = (
            JobRun.objects.using(self.alias)
            .filter(pk=self.run_id)
            .values("requested_action", "tuning")
            .first()
        )
        return Controls(row["requested_action"], row["tuning"]) if row else None

    # -- the owner's writes, all fenced ------------------------------------------------

    def _mine(self) -> QuerySet[JobRun]:
        return JobRun.objects.using(self.alias).filter(
            pk=self.run_id, owner_token=self.owner.token, state=State.RUNNING
        )

    def lock(self) -> tuple[Any, Controls, Any]:
        """Inside the chunk's transaction: lock the run row if this process still owns it,
        and read the checkpoint (the cursor and the last key to cover) and the operator's
        requests with it."""
        row = self._mine().select_for_update()
        found = row.values("cursor", "high_water_mark", "requested_action", "tuning").first()
        if found is None:
            raise self.lease_lost()
        return (
            found["cursor"],
            Controls(found["requested_action"], found["tuning"]),
            found["high_water_mark"],
        )

    def advance(
        self, *, cursor: Any, rows: int, rate: float | None, eta: float | None, set_aside: int = 0
    ) -> None:
        """Move the checkpoint, in the chunk's transaction: ``rows`` done, ``set_aside``
        quarantined (those move the cursor but are not done)."""
        extra: dict[str, Any] = {}
        if set_aside:
            extra["quarantined"] = F("quarantined") + set_aside
        if self._retry_notes:
            extra["stats"] = self._stats_with_retry_notes()
        updated = self._mine().update(
            cursor=cursor,
            done=F("done") + rows,
            chunks=F("chunks") + 1,
            retries=F("retries") + self._retries,
            heartbeat_at=Now(),
            rate=rate,
            eta_seconds=eta,
            **extra,
        )
        if not updated:
            raise self.lease_lost()
        self._retries, self._retry_notes = 0, []

    def heartbeat(self) -> None:
        if not self._mine().update(heartbeat_at=Now()):
            raise self.lease_lost()

    def note_retry(self, note: dict[str, Any]) -> None:
        """A retry, recorded with the next checkpoint or the release."""
        self._retries += 1
        self._retry_notes.append(note)

    def release(self, state: State, **fields: Any) -> None:
        """Leave RUNNING for ``state`` and give the lease up, if this process still owns
        the run (else ``LeaseLost``, and nothing is written)."""
        run = JobRun.objects.using(self.alias).filter(pk=self.run_id).first()
        if run is None or run.state != State.RUNNING or run.owner_token != self.owner.token:
            raise self.lease_lost(run)
        transition(
            run,
            state,
            using=self.alias,
            heartbeat_at=Now(),
            retries=F("retries") + self._retries,
            **fields,
        )
        self._retries = 0

    def save_finished_stats(self, stats: dict[str, Any]) -> None:
        """Figures measured after the run was released (VACUUM): fenced on a finished run
        with no owner, so a reopened run is never overwritten."""
        JobRun.objects.using(self.alias).filter(
            pk=self.run_id, owner_token="", finished_at__isnull=False
        ).update(stats=stats)

    def lease_lost(self, run: JobRun | None = None) -> LeaseLost:
        if run is None:
            with contextlib.suppress(DatabaseError):
                run = JobRun.objects.using(self.alias).filter(pk=self.run_id).first()
        return LeaseLost(lost_lease_message(self.job, self.run_id, run, self.owner))

    def _stats_with_retry_notes(self) -> dict[str, Any]:
        stats = dict(
            JobRun.objects.using(self.alias).values_list("stats", flat=True).get(pk=self.run_id)
        )
        stats["retry_log"] = [*stats.get("retry_log", []), *self._retry_notes][-_RETRIES_KEPT:]
        return stats

    # -- quarantined rows --------------------------------------------------------------

    def _unresolved(self) -> QuerySet[QuarantinedRow]:
        return QuarantinedRow.objects.using(self.alias).filter(
            run_id=self.run_id, resolved_at__isnull=True
        )

    def unresolved(self) -> list[QuarantinedRow]:
        return list(self._unresolved())

    def unresolved_count(self) -> int:
        return self._unresolved().count()

    def unresolved_keys(self, limit: int | None = None) -> list[Any]:
        keys = self._unresolved().values_list("key", flat=True)
        return list(keys[:limit] if limit is not None else keys)

    def quarantine(self, key: Any, *, error_class: str, error: str) -> None:
        """Set a row aside (inside a locked chunk transaction)."""
        QuarantinedRow.objects.using(self.alias).create(
            run_id=self.run_id, key=key, error_class=error_class, error_message=error
        )

    def is_unresolved(self, entry_id: int) -> bool:
        """False once resolved, even by an earlier attempt whose COMMIT reply was lost."""
        return self._unresolved().filter(pk=entry_id).exists()

    def resolve(self, entry_id: int) -> None:
        """A quarantined row done at last (inside a locked chunk transaction): it counts as
        done from now on."""
        if self._unresolved().filter(pk=entry_id).update(resolved_at=timezone.now()):
            JobRun.objects.using(self.alias).filter(pk=self.run_id).update(
                quarantined=F("quarantined") - 1, done=F("done") + 1
            )

    def note_quarantine_error(self, entry_id: int, *, error_class: str, error: str) -> None:
        QuarantinedRow.objects.using(self.alias).filter(pk=entry_id).update(
            error_class=error_class, error_message=error
        )


# -- runs not (yet) owned: claiming, steering, listing ----------------------------------


def runs_of(job: str, *, using: str = "default") -> QuerySet[JobRun]:
    return JobRun.objects.using(using).filter(job=job)


def unfinished(job: str, *, using: str = "default", lock: bool = False) -> JobRun | None:
    runs = runs_of(job, using=using)
    if lock:
        runs = runs.select_for_update()
    return runs.filter(state__in=UNFINISHED).first()


def newest_quarantined(job: str, *, using: str = "default") -> JobRun | None:
    """The newest run with quarantined rows, locked: ``--retry-quarantined`` reopens it."""
    return (
        runs_of(job, using=using)
        .select_for_update()
        .filter(state=State.QUARANTINED)
        .order_by("-created_at", "-id")
        .first()
    )


def to_continue(job: str, *, quarantined: bool = False, using: str = "default") -> JobRun | None:
    """The run a claim would continue (the unfinished one, or with ``quarantined`` the
    newest with quarantined rows), read without a lock: ``runjob`` reads its parameters
    when a required one was not given. The claim decides again, under the lock."""
    if not quarantined:
        return unfinished(job, using=using)
    runs = runs_of(job, using=using).filter(state=State.QUARANTINED)
    return runs.order_by("-created_at", "-id").first()


def with_session(stats: dict[str, Any], session: dict[str, Any]) -> dict[str, Any]:
    """``stats`` with one more line in the audit trail of processes that worked on the run."""
    return {**stats, "sessions": [*stats.get("sessions", []), session][-_SESSIONS_KEPT:]}


def add_session(run: JobRun, session: dict[str, Any], *, using: str = "default") -> None:
    """A process joined a live sliced run: a line in its audit trail (under the run lock)."""
    run.stats = with_session(run.stats, session)
    JobRun.objects.using(using).filter(pk=run.pk).update(stats=run.stats)


def create(job: str, *, using: str = "default", **fields: Any) -> JobRun:
    run = JobRun.objects.using(using).create(job=job, **fields)
    # The run's start on the database's clock: a job's verification compares with it.
    JobRun.objects.using(using).filter(pk=run.pk).update(started_at=Now())
    run.refresh_from_db()
    return run


def transition(run: JobRun, state: State, *, using: str = "default", **fields: Any) -> None:
    """Move ``run`` to ``state`` through the transitions table.

    The update is fenced on the state and owner read with the row: if another process
    changed either since, nothing is written and ``LeaseLost`` is raised. Only a running
    run has an owner: leaving RUNNING gives the lease up, so whichever process held it
    fails its next fence (a chunk, a heartbeat) and writes nothing more.
    """
    check_transition(run.state, state)
    if state != State.RUNNING:
        fields.setdefault("owner_token", "")
    fences_slices = run.sliced and state != State.RUNNING
    # One statement for a single process's run, as it always was; a transaction only when
    # the slices must change with the run.
    with transaction.atomic(using=using) if fences_slices else contextlib.nullcontext():
        updated = (
            JobRun.objects.using(using)
            .filter(pk=run.pk, state=run.state, owner_token=run.owner_token)
            .update(state=state, **fields)
        )
        if not updated:
            raise LeaseLost()
        if fences_slices:
            # Each slice's owner fences its chunks on its own row: clearing them all here
            # waits for the chunks in flight, and the next ones match nothing.
            JobSlice.objects.using(using).filter(run_id=run.pk).update(owner_token="")
    run.state = state
    if "owner_token" in fields:
        run.owner_token = fields["owner_token"]


def request_action(run: JobRun, action: str, *, using: str = "default") -> None:
    """Ask the live owner to pause or cancel at its next chunk boundary."""
    JobRun.objects.using(using).filter(pk=run.pk).update(requested_action=action)


def set_tuning(run: JobRun, tuning: dict[str, Any], *, using: str = "default") -> None:
    JobRun.objects.using(using).filter(pk=run.pk).update(tuning=tuning)


def delete_finished(run: JobRun, *, using: str = "default") -> None:
    """Delete a finished run's record (the admin). An unfinished one is never deleted: its
    process would lose its checkpoint and the job its one-run-at-a-time guard."""
    JobRun.objects.using(using).filter(pk=run.pk).exclude(state__in=UNFINISHED).delete()

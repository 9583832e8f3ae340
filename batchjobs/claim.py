"""Claiming a run for this process: resume the unfinished one, take over a stalled one,
or start a new one, and refuse when a live process owns it.

At most one unfinished run per job exists (a partial unique constraint), and its row is
locked while it is claimed, so two processes starting at once cannot both win.
"""

from __future__ import annotations

import getpass
from dataclasses import asdict, dataclass
from typing import Any

from django.db import DatabaseError, IntegrityError, OperationalError, connections, transaction
from django.db.models import Model, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from batchjobs import slice_store, store
from batchjobs.continuing import check_parameters
from batchjobs.database import lock_holders, set_local_timeouts, table_bytes
from batchjobs.exceptions import RunBusy, RunNotResumable
from batchjobs.job import ResumableJob
from batchjobs.keyset import Keyset, high_water_mark
from batchjobs.lease import Owner, alive, ended_by
from batchjobs.models import JobRun, State
from batchjobs.options import RunOptions
from batchjobs.retry import ErrorKind, classify, explain

_LOCK_WAIT = 5.0


@dataclass(frozen=True)
class Claim:
    job_name: str
    queryset: QuerySet[Model]
    key: str
    options: RunOptions
    owner: Owner
    alias: str
    # The job whose parameters a new run stores and a resumed one must match (None: a
    # caller that knows of no parameters; the run then stores none).
    job: ResumableJob | None = None
    # Shared by workers: a new run gets slices, a single-process one is made sliced, and a
    # sliced run that live workers own is joined rather than refused.
    sliced: bool = False

    def run(self) -> JobRun:
        """The run this process now owns, or a ``BatchJobError`` saying why not."""
        try:
            return self._decide()
        except DatabaseError as exc:
            # Only a lost connection is "unavailable" (69, retry later); a missing grant,
            # a missing table or a busy SQLite file each say so, with their own exit code.
            raise explain(
                exc,
                doing=f"Could not claim a run of {self.job_name}",
                after="Nothing was changed.",
            ) from None

    def _decide(self) -> JobRun:
        # Refuse a live owner from a plain read first: it waits neither for the run row,
        # which the running job locks for each chunk, nor (SQLite) for the write lock,
        # which the running job takes back as soon as it lets it go.
        current = store.unfinished(self.job_name, using=self.alias)
        if current is not None and alive(current, alias=self.alias, claiming=True):
            return self._join(current)
        try:
            with transaction.atomic(using=self.alias):
                # A run row locked by a lost host's open transaction must not hang us.
                set_local_timeouts(
                    connections[self.alias], statement_seconds=None, lock_seconds=_LOCK_WAIT
                )
                current = store.unfinished(self.job_name, using=self.alias, lock=True)
                if current is not None and self.options.retry_quarantined:
                    raise RunNotResumable(
                        f"Run #{current.pk} of {self.job_name} is unfinished: `runjob "
                        f"{self.job_name}` resumes it and retries its quarantined rows first."
                    )
                if current is None:
                    if self.options.retry_quarantined:
                        return self._reopen_quarantined()
                    if self.options.resume:
                        raise RunNotResumable(f"{self.job_name} has no unfinished run to resume.")
                    return self._create()
                if alive(current, alias=self.alias, claiming=True):
                    return self._join(current)
                if self.options.restart:
                    # Leaving RUNNING clears the owner: a frozen old process that wakes up
                    # fails its next fence and writes nothing to the abandoned run.
                    store.transition(
                        current,
                        State.ABANDONED,
                        using=self.alias,
                        finished_at=timezone.now(),
                        stats={
                            **current.stats,
                            "ended_by": ended_by("restart", self.owner, os_user()),
                        },
                    )
                    return self._create()
                if current.state == State.PAUSED and not self.options.resume:
                    raise RunNotResumable(
                        f"Run #{current.pk} of {self.job_name} is paused. Continue it with "
                        f"`runjob {self.job_name} --resume`, or start over with --restart."
                    )
                return self._take_over(current)
        except IntegrityError:
            # Another process created a run between our look and our insert.
            current = store.unfinished(self.job_name, using=self.alias)
            raise RunBusy(busy_message(self.job_name, current)) from None
        except _TableLocked:
            table = self.queryset.model._meta.db_table
            holders = lock_holders(connections[self.alias], table)
            raise RunBusy(
                f"The table {table} stayed locked by another session for over {_LOCK_WAIT:g}s"
                f"{f' ({holders})' if holders else ''}, so no run of {self.job_name} was "
                "started; nothing was changed. Try again once it is released."
            ) from None
        except OperationalError as exc:
            if classify(exc) is not ErrorKind.LOCK_TIMEOUT:
                raise
            # The run row stayed locked past the wait: a chunk in flight, a control
            # command, another claim, or a lost host's open transaction.
            current = store.unfinished(self.job_name, using=self.alias)
            if current is not None and alive(current, alias=self.alias, claiming=True):
                raise RunBusy(busy_message(self.job_name, current)) from None
            raise RunBusy(locked_message(self.job_name, current)) from None

    def _join(self, current: JobRun) -> JobRun:
        """A live run: more workers for a sliced one (same parameters), else refused."""
        joinable = self.sliced and current.sliced and current.state == State.RUNNING
        if not joinable or self.options.restart or self.options.retry_quarantined:
            raise RunBusy(busy_message(self.job_name, current))
        self._check_parameters(current)
        store.add_session(current, {**self._session(), "joined": True}, using=self.alias)
        return current

    def _owner_fields(self) -> dict[str, Any]:
        # A sliced run's row has no owner: its workers own its slices, and the last one out
        # owns the row only to record the end (so that exactly one worker does).
        return {
            "owner_token": "" if self.sliced else self.owner.token,
            "owner_host": "" if self.sliced else self.owner.host,
            "owner_pid": None if self.sliced else self.owner.pid,
            "heartbeat_at": Now(),
            "requested_action": "",
            # Live tuning belongs to the session it was given to; a new one starts from
            # its own command line.
            "tuning": {},
        }

    def _session(self) -> dict[str, Any]:
        """One line of the audit trail per process that worked on the run."""
        return {
            "by": os_user(),
            "at": timezone.now().isoformat(),
            "host": self.owner.host,
            "pid": self.owner.pid,
            "reason": self.options.reason,
            "options": self._recorded_options(),
        }

    def _recorded_options(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self.options).items() if v not in (None, False, "", {})}

    def _create(self) -> JobRun:
        parameters: dict[str, Any] = {}
        if self.job is not None:
            if (run_id := self.job.parameters_from_run()) is not None:
                # The values came from a run that ended since `runjob` read them: they
                # were that run's, not what the operator asked for a new one.
                raise RunNotResumable(
                    f"Run #{run_id} of {self.job_name} ended while this process started, so "
                    "there is nothing to resume; to start a new run, give its parameters."
                )
            parameters = self.job.stored_parameters()
        try:
            hwm = high_water_mark(self.queryset, self.key)
            keyset = Keyset(self.queryset, self.key, hwm)
            total = keyset.bounded().count() if hwm is not None else 0
            size = table_bytes(connections[self.alias], self.queryset.model)
        except OperationalError as exc:
            if classify(exc) is ErrorKind.LOCK_TIMEOUT:
                raise _TableLocked() from exc  # said outside the aborted transaction
            raise
        run = store.create(
            self.job_name,
            using=self.alias,
            state=State.RUNNING,
            high_water_mark=keyset.encode(hwm),
            total=total,
            options=self._recorded_options(),
            parameters=parameters,
            started_by=os_user(),
            reason=self.options.reason,
            stats={"table_bytes_before": size, "sessions": [self._session()]},
            sliced=self.sliced,
            **self._owner_fields(),
        )
        if self.sliced:
            slice_store.create_first(run, using=self.alias)
        return run

    def _take_over(self, run: JobRun) -> JobRun:
        self._check_parameters(run)
        stats = store.with_session(run.stats, self._session())
        if run.sliced and not self.sliced and not self.options.retry_quarantined:
            raise RunNotResumable(
                f"Run #{run.pk} of {self.job_name} is shared by workers; continue it with "
                f"`runjob {self.job_name} --workers N`."
            )
        convert = self.sliced and not run.sliced
        store.transition(
            run,
            State.RUNNING,
            using=self.alias,
            stats=stats,
            options=self._recorded_options(),
            sliced=run.sliced or self.sliced,
            **self._owner_fields(),
        )
        run.refresh_from_db()
        if convert:  # a single process's run, shared from its checkpoint on
            slice_store.create_first(run, using=self.alias, done_upto=run.cursor)
        return run

    def _check_parameters(self, run: JobRun) -> None:
        if self.job is not None:
            check_parameters(self.job, run)

    def _reopen_quarantined(self) -> JobRun:
        run = store.newest_quarantined(self.job_name, using=self.alias)
        if run is None:
            raise RunNotResumable(f"{self.job_name} has no run with quarantined rows.")
        return self._take_over(run)


class _TableLocked(Exception):
    """The job's table stayed locked while a new run measured it (the run row was not)."""


def locked_message(job_name: str, run: JobRun | None) -> str:
    """The run row is locked, yet no live process owns the run: say that, not 'running'."""
    if run is None:
        return f"Another process is starting {job_name}; try again in a moment."
    return (
        f"Run #{run.pk} of {job_name} ({run.state}, no live process) stayed locked by another "
        f"database session for over {_LOCK_WAIT:g}s: another `runjob {job_name}` or a "
        "control command is claiming it, or a lost session still holds its row. Nothing was "
        "changed; try again in a moment."
    )


def busy_message(job_name: str, run: JobRun | None) -> str:
    if run is None:
        return f"Another process is starting {job_name}; try again in a moment."
    heartbeat = f"{run.heartbeat_at:%H:%M:%S} UTC" if run.heartbeat_at else "none yet"
    by = slice_store.who(run, using=run._state.db or "default")
    if not run.sliced:
        by += f", last heartbeat {heartbeat}"
    join = f", add workers with `runjob {job_name} --workers N`" if run.sliced else ""
    return (
        f"{job_name} is already running as run #{run.pk} ({by}). Wait for it{join}, or "
        f"stop it with `runjob {job_name} --pause` or --cancel."
    )


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user database entry in some containers
        return "unknown"

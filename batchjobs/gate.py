"""``RequireJobFinished``: a migration operation that stops ``migrate`` until a job is done.

The deploy gate of a zero-downtime change: a later migration places it before the step
that assumes the job's result (a column the job fills becoming NOT NULL), so that
``migrate`` refuses, in one sentence naming the job, its newest run and the command that
finishes it, instead of failing halfway or deploying code that assumes what is not true.

It reads through the migration's historical models (``apps.get_model``), never the job's
module or the current models: the job's code may import models in a state the database
has not reached yet. Its migration must therefore depend on a ``batchjobs`` migration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.core.management.base import CommandError
from django.db import router
from django.db.migrations.operations.base import Operation
from django.db.models import Model, QuerySet

from batchjobs import conf, sentences
from batchjobs.database import now as database_now
from batchjobs.job import valid_name
from batchjobs.lease import owner_alive
from batchjobs.models import State

if TYPE_CHECKING:
    from django.apps.registry import Apps
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.base.schema import BaseDatabaseSchemaEditor
    from django.db.migrations.migration import Migration
    from django.db.migrations.state import ProjectState

# What a migration may say is left to do: the rows (counted), or just whether any are left.
Remaining = Callable[["Apps"], "QuerySet[Any] | bool | int"]


@dataclass(frozen=True)
class RunFacts:
    """What the gate tells of a job's newest run."""

    run_id: int
    state: str
    done: int
    total: int | None
    quarantined: int = 0
    error_message: str = ""
    stalled: bool = False  # "running", but its process is gone


def refusal(
    *, app_label: str, job: str, run: RunFacts | None, remaining: int | bool | None
) -> str | None:
    """Why ``app_label`` may not migrate yet, as one sentence, or ``None`` to let it.

    With ``remaining`` (rows still needing the job, or whether any do), the data decides:
    nothing left passes (a fresh database, an empty table, a finished job), anything left
    refuses, even after a successful run (rows written since by code that does not do the
    job's work: the next operation would fail on them). Without it, the newest run must
    have succeeded; ``succeeded_with_quarantine`` does not pass, since its quarantined
    rows never got the job's work.
    """
    if remaining is not None:
        if not remaining:
            return None
    elif run is not None and run.state == State.SUCCEEDED:
        return None
    why = _where_it_stands(job, run)
    left = _left(remaining)
    situation = f"{left}, and {why[0]}" if left else why[0]
    return f"Migrating {app_label} needs the job {job} to have finished: {situation}. {why[1]}"


def _left(remaining: int | bool | None) -> str:
    if remaining is None:
        return ""
    if remaining is True:
        return "some rows still need it"
    return f"{_rows(remaining)} still {'needs' if remaining == 1 else 'need'} it"


def _rows(n: int) -> str:
    return "1 row" if n == 1 else f"{n:,} rows"


# How the newest run stands, by its state, as (the situation, what to do, then the command
# to copy; it comes last so that it can be copied whole). Filled in: {run}, {at} (its
# progress), {error}, {quarantined}, {job}.
_RUNJOB = ": python manage.py runjob {job}"
_STANDING: dict[str, tuple[str, str, str]] = {
    "never run": ("it has never run", "Run it", _RUNJOB),
    "stalled": ("{run} is stalled at {at}: its process is gone", "Continue it", _RUNJOB),
    State.RUNNING: (
        "{run} is running at {at}",
        "Wait for it to finish",
        "; to watch it: python manage.py listjobs {job} --follow",
    ),
    State.PAUSED: ("{run} is paused at {at}", "Resume it", _RUNJOB + " --resume"),
    State.INTERRUPTED: ("{run} is interrupted at {at}", "Continue it", _RUNJOB),
    State.FAILED: ("{run} failed at {at}{error}", "Fix the cause, continue it", _RUNJOB),
    State.SUCCEEDED: (
        "{run} succeeded before they were written (by code that does not do its work?)",
        "Run it again",
        _RUNJOB,
    ),
    State.QUARANTINED: (
        "{run} succeeded with {quarantined} quarantined",
        "Fix those rows, retry them",
        _RUNJOB + " --retry-quarantined",
    ),
    State.CANCELLED: ("{run} was cancelled at {at}", "Start a new run", _RUNJOB),
    State.ABANDONED: ("{run} was abandoned at {at}", "Start a new run", _RUNJOB),
}


def _where_it_stands(job: str, run: RunFacts | None) -> tuple[str, str]:
    """``(how the newest run stands, what to do then)``."""
    if run is None:
        key = "never run"
    elif run.state == State.RUNNING and run.stalled:
        key = "stalled"
    else:
        key = run.state
    standing, what, command = _STANDING.get(
        key, (f"{{run}} is {key} at {{at}}", "Finish it", _RUNJOB)
    )
    facts = {
        "job": job,
        "run": "" if run is None else f"its run #{run.run_id}",
        "at": "" if run is None else sentences.of_total(run.done, run.total, " rows"),
        "error": f" ({run.error_message})" if run and run.error_message else "",
        "quarantined": "" if run is None else _rows(run.quarantined),
    }
    return standing.format(**facts), f"{what}, then migrate again{command.format(**facts)}"


def waiting_for(job: str | None, plan: Sequence[tuple[Migration, bool]]) -> set[tuple[str, str]]:
    """The migrations of ``plan`` (the unapplied ones, in ``migrate``'s order) that wait
    for ``job`` (for any job, with ``None``): the first one that holds a gate, if that gate
    is ``job``'s, and every one after it, whatever its app.

    ``runjob`` and ``listjobs`` refuse a database with unapplied migrations, except these:
    ``migrate`` applies the plan in order and stops at the first gate until its job is done,
    so nothing after that gate can be applied before the job runs, and the job must be able
    to run (and be watched) while they are unapplied. Another job's gate first in line
    means that job must run first: ``migrate`` names it. The job runs against the schema as
    it is before its gate; that is the contract of a job that a gate waits for.
    """
    forwards = [migration for migration, backwards in plan if not backwards]
    for position, migration in enumerate(forwards):
        gated = {op.job for op in migration.operations if isinstance(op, RequireJobFinished)}
        if gated:
            if job is not None and job not in gated:
                return set()
            return {(m.app_label, m.name) for m in forwards[position:]}
    return set()


class RequireJobFinished(Operation):
    """Refuse to migrate further until the job ``job`` has done its work.

    ``remaining(apps)`` (optional) says what is left, through the historical models:
    a queryset of the rows that still need the job (counted), or a bool. Given, it
    decides (see ``refusal``), and a database with nothing to do (fresh, or an empty
    table) passes without any run. Without it, the job's newest run must have succeeded.

    Backwards it does nothing. ``sqlmigrate`` shows it as an operation that cannot be
    written as SQL; ``migrate --fake`` skips it, like every operation.
    """

    reduces_to_sql = False
    reversible = True

    def __init__(
        self, job: str, remaining: Remaining | None = None, hints: dict[str, Any] | None = None
    ) -> None:
        if not valid_name(job):
            raise ValueError(f"{job!r} is not a job name (lowercase letters, digits, _).")
        self.job = job
        self.remaining = remaining
        self.hints = hints or {}

    def state_forwards(self, app_label: str, state: ProjectState) -> None:
        pass  # no model changes

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        connection = schema_editor.connection
        if not router.allow_migrate(connection.alias, app_label, **self.hints):
            return
        apps = from_state.apps
        runs = self._runs(apps)
        left = None if self.remaining is None else self._left(apps, connection.alias)
        message = refusal(
            app_label=app_label,
            job=self.job,
            run=None if left == 0 else self._newest_run(runs, connection),
            remaining=left,
        )
        if message:
            raise CommandError(message)

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        pass  # undoing what follows it needs no job

    def describe(self) -> str:
        return f"Require the job {self.job} to have finished"

    @property
    def migration_name_fragment(self) -> str:
        return f"require_{self.job}"

    def _left(self, apps: Apps, alias: str) -> int | bool:
        assert self.remaining is not None
        left = self.remaining(apps)
        if isinstance(left, QuerySet):
            return left.using(alias).count()
        if isinstance(left, bool | int):
            return left
        raise TypeError(
            f"RequireJobFinished({self.job!r}): remaining() returned a "
            f"{type(left).__name__}; return a queryset of the rows left, or a bool."
        )

    def _runs(self, apps: Apps) -> type[Model]:
        """The historical ``JobRun``: the table as this migration's state knows it."""
        try:
            return apps.get_model("batchjobs", "JobRun")
        except LookupError:
            raise CommandError(
                f"RequireJobFinished({self.job!r}) reads the job's runs, so its migration "
                "must depend on a batchjobs migration: add ('batchjobs', "
                "'0003_no_pending_state') (or a later one) to its dependencies."
            ) from None

    def _newest_run(self, runs: type[Model], connection: BaseDatabaseWrapper) -> RunFacts | None:
        row = (
            runs._default_manager.using(connection.alias)
            .filter(job=self.job)
            .order_by("-created_at", "-id")
            .values(
                "id",
                "state",
                "done",
                "total",
                "quarantined",
                "error_message",
                "owner_token",
                "owner_host",
                "owner_pid",
                "heartbeat_at",
            )
            .first()
        )
        if row is None:
            return None
        stalled = row["state"] == State.RUNNING and not owner_alive(
            owner_token=row["owner_token"],
            owner_host=row["owner_host"],
            owner_pid=row["owner_pid"],
            heartbeat_at=row["heartbeat_at"],
            now=database_now(connection),
            stale_after=timedelta(seconds=conf.get().STALE_AFTER_SECONDS),
        )
        return RunFacts(
            run_id=row["id"],
            state=row["state"],
            done=row["done"],
            total=row["total"],
            quarantined=row["quarantined"],
            error_message=row["error_message"],
            stalled=stalled,
        )

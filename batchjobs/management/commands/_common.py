"""What both commands share: exit codes that hold with ``--traceback``, and a reachable,
migrated database before they touch a run."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterable, Sequence

from django.apps import AppConfig, apps
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Model

from batchjobs.exceptions import BatchJobError, DatabaseUnavailable, InsufficientPrivilege
from batchjobs.exit_codes import ExitCode
from batchjobs.gate import waiting_for
from batchjobs.models import JobRun, QuarantinedRow
from batchjobs.retry import explain


class BatchCommand(BaseCommand):
    """A command whose documented exit codes hold whatever the verbosity.

    Django's ``run_from_argv`` re-raises a ``CommandError`` when ``--traceback`` is given,
    so Python exits 1 and a script can no longer tell "busy, try again" (75) from "unknown
    job" (2). Here the traceback is printed and the command still exits with the error's
    own code.
    """

    def run_from_argv(self, argv: list[str]) -> None:
        try:
            super().run_from_argv(argv)
        except CommandError as exc:  # reached only with --traceback
            self.stderr.write("".join(traceback.format_exception(exc)), ending="")
            sys.exit(exc.returncode)

    def check(
        self,
        app_configs: Sequence[AppConfig] | None = None,
        tags: Sequence[str] | None = None,
        display_num_errors: bool = False,
        include_deployment_checks: bool = False,
        fail_level: int = 40,
        databases: Sequence[str] | None = None,
    ) -> None:
        """The system checks before ``handle``, without the database: the command checks
        the database itself (``require_database``), so that an unreachable or locked one
        is its one line and exit code (69, 75), not a traceback or a check error.

        Django 5.2 runs the database checks only for the aliases it is given; Django 6
        runs the model checks against every database when given none (so SQLite busy
        with another writer fails as "SQLite does not support JSONFields"). An explicit
        empty list means the same, no database, on both."""
        super().check(
            app_configs=app_configs,
            tags=tags,
            display_num_errors=display_num_errors,
            include_deployment_checks=include_deployment_checks,
            fail_level=fail_level,
            databases=[] if databases is None else databases,
        )


def where(alias: str = DEFAULT_DB_ALIAS) -> str:
    """``postgresql at 127.0.0.1:5432/app``: where the database is, never a password."""
    s = connections[alias].settings_dict
    if connections[alias].vendor == "sqlite":
        return f"sqlite at {s['NAME']}"
    host, port = s.get("HOST") or "localhost", s.get("PORT") or ""
    return f"{connections[alias].vendor} at {host}:{port}/{s['NAME']}"


def require_database(
    alias: str = DEFAULT_DB_ALIAS,
    *,
    models: Iterable[type[Model]] = (),
    needs: str,
    job: str | None = None,
) -> None:
    """A reachable database whose migrations are applied and whose tables exist: the
    batchjobs tables and those of ``models``. ``needs``: the privileges the command needs,
    for the message when the database user lacks one. Migrations that wait for a deploy
    gate on ``job`` (on any job, with ``None``) may be unapplied: the gate waits for the
    job to be run (batchjobs.gate)."""
    connection = connections[alias]
    try:
        connection.ensure_connection()
    except DatabaseError as exc:
        raise _unreachable(exc, alias) from None
    try:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        waiting = waiting_for(job, plan)
        pending = [step for step in plan if (step[0].app_label, step[0].name) not in waiting]
        missing = _missing_tables(connection, [JobRun, QuarantinedRow, *models])
    except DatabaseError as exc:
        error = explain(exc, doing=f"Could not read the database's migrations ({where(alias)})")
        raise command_error(error, needs=needs) from None
    if pending:
        raise CommandError(
            f"The database ({where(alias)}) has {len(pending)} unapplied migrations; "
            "run `python manage.py migrate` first.",
            returncode=int(ExitCode.USAGE),
        )
    if missing:
        raise CommandError(_missing_message(missing, alias), returncode=int(ExitCode.USAGE))


def command_error(exc: BatchJobError, *, needs: str = "") -> CommandError:
    """A library error as the command's one line and exit code. A missing privilege also
    says what the user holds on the table the database named, and what the command needs:
    the operator then grants it all at once rather than one refusal at a time."""
    message = str(exc)
    postgresql = connections[DEFAULT_DB_ALIAS].vendor == "postgresql"
    if isinstance(exc, InsufficientPrivilege) and needs and postgresql:
        held = _privileges(exc.table) if exc.table else None
        if held is None:
            message += f" The database user needs {needs}."
        else:
            user, privileges = held
            has = f"only {', '.join(privileges)}" if privileges else "no privilege"
            message += f" The database user {user} has {has} on {exc.table}; it needs {needs}."
    return CommandError(message, returncode=int(exc.exit_code))


def _unreachable(exc: DatabaseError, alias: str) -> CommandError:
    connection = connections[alias]
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if "permission denied for database" in first_line:  # no CONNECT privilege
        return CommandError(
            f"The database ({where(alias)}) refused the connection: {first_line}. Grant the "
            "user CONNECT on the database.",
            returncode=int(ExitCode.PERMISSION_DENIED),
        )
    advice = "Check that the server is up and DATABASE_URL points at it."
    if "timeout expired" in first_line:
        seconds = connection.settings_dict.get("OPTIONS", {}).get("connect_timeout")
        advice = (
            f"Nothing answered within {seconds} s: check that DATABASE_URL points at the "
            "database server and that nothing in between holds the connection (the wait "
            "is ?connect_timeout=N in DATABASE_URL, or BATCHJOBS_CONNECT_TIMEOUT)."
        )
    return CommandError(
        f"{DatabaseUnavailable.__doc__} ({where(alias)}): {first_line}. {advice}",
        returncode=int(ExitCode.DATABASE_UNAVAILABLE),
    )


def _missing_tables(
    connection: BaseDatabaseWrapper, models: Iterable[type[Model]]
) -> list[type[Model]]:
    present = set(connection.introspection.table_names())
    return [m for m in models if m._meta.managed and m._meta.db_table not in present]


def _missing_message(missing: list[type[Model]], alias: str) -> str:
    """After ``migrate --fake`` the migrations are recorded and the tables are not, so a
    plain ``migrate`` does nothing: say how to unrecord them first, for every app whose
    tables are missing (``migrate`` fails on the first one left out). contenttypes goes
    first: while it is recorded, every ``migrate`` ends by writing to its missing table."""
    tables = ", ".join(m._meta.db_table for m in missing)
    ours = " and ".join(sorted({m._meta.app_label for m in missing}))
    everywhere = _missing_tables(connections[alias], apps.get_models())
    labels = sorted(
        {m._meta.app_label for m in [*missing, *everywhere]},
        key=lambda label: (label != "contenttypes", label),
    )
    if len(labels) == 1:
        unrecord = f"`python manage.py migrate {labels[0]} zero --fake`"
    else:
        unrecord = (
            f"`python manage.py migrate APP zero --fake` for each APP of {', '.join(labels)} "
            "(in that order)"
        )
    return (
        f"The database ({where(alias)}) lacks the table(s) {tables}, though the migrations "
        f"of {ours} are recorded as applied (a `migrate --fake`?). Run {unrecord}, then "
        "`python manage.py migrate`."
    )


def _privileges(table: str, alias: str = DEFAULT_DB_ALIAS) -> tuple[str, list[str]] | None:
    """``(user, privileges it holds on table)`` (PostgreSQL), or ``None`` when that
    cannot be asked: another database, an aborted transaction, a table it cannot see."""
    connection = connections[alias]
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return None
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_user, ARRAY(SELECT p FROM unnest(%s::text[]) AS p "
                "WHERE has_table_privilege(%s, p))",
                [["SELECT", "INSERT", "UPDATE", "DELETE"], table],
            )
            user, privileges = cursor.fetchone()
    except DatabaseError:
        return None
    return f'"{user}"', list(privileges)

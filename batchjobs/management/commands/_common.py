"""What both commands share: exit codes that hold with ``--traceback``, and a reachable,
migrated database before they touch a run."""

from __future__ import annotations

import sys
import traceback

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor

from batchjobs.exceptions import DatabaseUnavailable
from batchjobs.exit_codes import ExitCode


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


def where(alias: str = DEFAULT_DB_ALIAS) -> str:
    """``postgresql at 127.0.0.1:5432/app``: where the database is, never a password."""
    s = connections[alias].settings_dict
    if connections[alias].vendor == "sqlite":
        return f"sqlite at {s['NAME']}"
    host, port = s.get("HOST") or "localhost", s.get("PORT") or ""
    return f"{connections[alias].vendor} at {host}:{port}/{s['NAME']}"


def require_database(alias: str = DEFAULT_DB_ALIAS) -> None:
    connection = connections[alias]
    try:
        connection.ensure_connection()
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        advice = "Check that the server is up and DATABASE_URL points at it."
        if "timeout expired" in first_line:
            seconds = connection.settings_dict.get("OPTIONS", {}).get("connect_timeout")
            advice = (
                f"Nothing answered within {seconds} s: check that DATABASE_URL points at the "
                "database server and that nothing in between holds the connection (the wait "
                "is ?connect_timeout=N in DATABASE_URL, or BATCHJOBS_CONNECT_TIMEOUT)."
            )
        raise CommandError(
            f"{DatabaseUnavailable.__doc__} ({where(alias)}): {first_line}. {advice}",
            returncode=int(ExitCode.DATABASE_UNAVAILABLE),
        ) from None
    if pending:
        raise CommandError(
            f"The database ({where(alias)}) has {len(pending)} unapplied migrations; "
            "run `python manage.py migrate` first.",
            returncode=int(ExitCode.USAGE),
        )

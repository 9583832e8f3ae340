"""The database the benchmark runs on, and the tickets table each approach starts from.

Destructive: the table is emptied and seeded again before every approach.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass

import psycopg2
from django.core.management import call_command
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor

from tests.bench.measure import BenchmarkError
from tickets.models import Ticket
from tickets.seeding import seed


def prepare_database() -> str:
    """Refuse anything but PostgreSQL; create and migrate the database when it is missing.

    Returns a sentence for the operator when it created the database, else ``""``. An
    existing database with unapplied migrations is refused rather than migrated.
    """
    if connection.vendor != "postgresql":
        raise BenchmarkError(
            f"The benchmark measures PostgreSQL only; this database is {connection.vendor}. "
            "Run `make bench`, or set DATABASE_URL=postgres://USER@HOST:PORT/DBNAME."
        )
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        raise BenchmarkError(
            "The runjob subprocesses find the database through DATABASE_URL; set it to the "
            "PostgreSQL database this command uses."
        )
    created = _create_database_if_missing()
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending and not created:
        raise BenchmarkError(
            f"The database has {len(pending)} unapplied migrations; "
            "run `python manage.py migrate` first."
        )
    if pending:
        call_command("migrate", interactive=False, verbosity=0)
        return f"Created and migrated the database {connection.settings_dict['NAME']}."
    return ""


def _create_database_if_missing() -> bool:
    s = connection.settings_dict
    params = {
        "dbname": "postgres",
        "user": s.get("USER") or None,
        "password": s.get("PASSWORD") or None,
        "host": s.get("HOST") or None,
        "port": s.get("PORT") or None,
        "connect_timeout": 10,
    }
    try:
        maintenance = psycopg2.connect(**{k: v for k, v in params.items() if v is not None})
    except psycopg2.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BenchmarkError(f"Cannot reach the PostgreSQL server: {first}") from None
    try:
        maintenance.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with maintenance.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [s["NAME"]])
            if cursor.fetchone():
                return False
            cursor.execute(f"CREATE DATABASE {connection.ops.quote_name(s['NAME'])}")
            return True
    finally:
        maintenance.close()


def has_tickets() -> bool:
    """Whether the table holds tickets that the benchmark would destroy."""
    return Ticket.objects.exists()


def table_name() -> str:
    return connection.ops.quote_name(Ticket._meta.db_table)


def fresh_table(rows: int) -> None:
    """``rows`` new tickets in a new table file, analysed, with nothing left to flush.

    ``TRUNCATE`` gives the table and its indexes new files (no dead rows from the last
    approach) and restarts the keys at 1; the ``CHECKPOINT`` writes the seeding's dirty
    pages out now, so that the timed approach does not pay for them.
    """
    empty_table()
    seed(rows)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {table_name()}")
    # Needs superuser or pg_checkpoint; without it the timings include more write-back.
    with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")


def empty_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table_name()} RESTART IDENTITY")


@dataclass(frozen=True)
class Witness:
    """The tokens of the first and the last row an approach must rotate, read through this
    process's connection before it runs: if they have not changed after it, the approach
    worked on another database (a DATABASE_URL that is not this command's) or not at all."""

    tokens: dict[int, uuid.UUID]

    @classmethod
    def take(cls, rows: int) -> Witness:
        # fresh_table() restarts the keys, so the rows are 1..N in order: two index lookups,
        # where finding the N-th key would scan (and warm) the index before the run.
        ends = {1, rows}
        tokens = dict(Ticket.objects.filter(pk__in=ends).values_list("pk", "token"))
        if set(tokens) != ends:
            raise BenchmarkError(f"The table is not fresh: keys {sorted(ends)} are not there.")
        return cls(tokens)

    def check(self, approach: str) -> None:
        now = dict(Ticket.objects.filter(pk__in=self.tokens).values_list("pk", "token"))
        kept = sorted(k for k, token in self.tokens.items() if now.get(k) == token)
        if kept:
            raise BenchmarkError(
                f"{approach} finished, but the rows {kept} of this database still have their "
                "old tokens: is DATABASE_URL the database this command uses?"
            )

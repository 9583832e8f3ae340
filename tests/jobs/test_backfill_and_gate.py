"""The zero-downtime NOT NULL column, end to end, through real ``migrate`` and ``runjob``
processes on a database of the test's own (a SQLite file, or a PostgreSQL database the
test creates and drops): the column added nullable (tickets.0002), rows written before it
(their search title NULL), ``migrate`` stopped by the gate with its sentence and the schema
left as it was, the backfill interrupted and then finished, and ``migrate`` through to NOT
NULL (tickets.0003). A fresh database migrates straight through."""

from __future__ import annotations

import os
import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.db import connection

from tests.conftest import Cli, wait_for
from tickets.search_title import normalise

JOB = "backfill_ticket_search_title"
ROWS = 300
GATE = f"CommandError: Migrating tickets needs the job {JOB} to have finished: "
AWKWARD = ["  Printer\tON  fire ", "ΟΔΟΣ İstanbul\u3000STRAẞE", "\u00a0", "Tabs\t\tand\r\nLINE\x85"]


@dataclass
class OwnDatabase:
    """A database for one test, at whatever migration state the test puts it in."""

    url: str
    path: Path | None = None  # SQLite's file
    dsn: dict[str, Any] | None = None  # PostgreSQL's connection parameters

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.path is not None:
            with closing(sqlite3.connect(self.path)) as db, db:
                return db.execute(sql.replace("%s", "?"), params).fetchall()
        import psycopg2  # noqa: PLC0415

        db = psycopg2.connect(**(self.dsn or {}))
        try:
            with db, db.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
        finally:
            db.close()

    def search_title_nullable(self) -> bool:
        if self.path is not None:
            columns = {row[1]: row[3] for row in self.query("PRAGMA table_info(tickets_ticket)")}
            return columns["search_title"] == 0
        [(nullable,)] = self.query(
            "SELECT is_nullable FROM information_schema.columns "
            "WHERE table_name = 'tickets_ticket' AND column_name = 'search_title'"
        )
        return nullable == "YES"

    def tickets_migrations(self) -> list[str]:
        rows = self.query("SELECT name FROM django_migrations WHERE app = 'tickets' ORDER BY id")
        return [name for (name,) in rows]


@pytest.fixture
def own_database(tmp_path: Path) -> Iterator[OwnDatabase]:
    if connection.vendor == "sqlite":
        path = tmp_path / "gate.sqlite3"
        yield OwnDatabase(url=f"sqlite:///{path}", path=path)
        return
    import psycopg2  # noqa: PLC0415

    s = connection.settings_dict
    server = {
        "user": s.get("USER") or "",
        "password": s.get("PASSWORD") or "",
        "host": s.get("HOST") or "127.0.0.1",
        "port": s.get("PORT") or 5432,
    }
    name = f"test_gate_p{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(dbname="postgres", **server)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        password = f":{quote(server['password'])}" if server["password"] else ""
        url = (
            f"postgres://{quote(server['user'])}{password}@{server['host']}:{server['port']}/{name}"
        )
        yield OwnDatabase(url=url, dsn={"dbname": name, **server})
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _manage(db: OwnDatabase, *args: str) -> Any:
    return Cli(db.url).run(*args)


def _rows_written_before_the_column(db: OwnDatabase) -> None:
    """Tickets as the code before tickets.0002 left them: no search title."""
    seeded = _manage(db, "seed_tickets", "--count", str(ROWS))
    assert seeded.returncode == 0, seeded.stderr
    for offset, title in enumerate(AWKWARD, start=1):
        db.query("UPDATE tickets_ticket SET title = %s WHERE id = %s", (title, offset))
    db.query("UPDATE tickets_ticket SET search_title = NULL")


@pytest.mark.parametrize(
    "sql_side", [False, pytest.param(True, marks=pytest.mark.postgres)], ids=["python", "sql"]
)
def test_backfill_and_gate__migrate_stops_until_the_backfill_is_done(
    own_database: OwnDatabase, sql_side: bool
) -> None:
    db = own_database
    side = ["--sql-side"] if sql_side else []
    step = _manage(db, "migrate", "tickets", "0002_ticket_search_title")
    assert step.returncode == 0, step.stderr
    _rows_written_before_the_column(db)

    # The gate: one sentence, exit 1, and nothing of 0003 done (the ALTER comes after it).
    refused = _manage(db, "migrate")
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr == (
        f"{GATE}{ROWS} rows still need it, and it has never run. Run it, then migrate "
        f"again: python manage.py runjob {JOB}\n"
    )
    assert db.tickets_migrations() == ["0001_initial", "0002_ticket_search_title"]
    assert db.search_title_nullable()
    assert db.query("SELECT count(*) FROM tickets_ticket WHERE search_title IS NULL") == [(ROWS,)]

    # While the gate waits, the job can run and be watched; other jobs wait for migrate.
    assert _manage(db, "listjobs", JOB).returncode == 0
    other = _manage(db, "runjob", "rotate_ticket_tokens")
    assert other.returncode == 2, other.stderr
    assert "has 1 unapplied migrations; run `python manage.py migrate` first." in other.stderr

    # A run stopped part way: the gate names it, its progress and how to continue it.
    stopped = _manage(
        db, "runjob", JOB, *side, "--batch-size", "40", "--sleep", "0.4", "--max-runtime", "1"
    )
    assert stopped.returncode == 6, stopped.stderr  # MAX_RUNTIME: interrupted as planned
    refused = _manage(db, "migrate")
    assert refused.returncode == 1
    match = re.fullmatch(
        rf"{re.escape(GATE)}(\d+) rows still need it, and its run #1 is interrupted at "
        rf"(\d+) of {ROWS} rows \(\d+\.\d%\)\. Continue it, then migrate again: "
        rf"python manage\.py runjob {JOB}\n",
        refused.stderr,
    )
    assert match, refused.stderr
    left, done = int(match[1]), int(match[2])
    assert 0 < done < ROWS and left == ROWS - done
    assert db.search_title_nullable()

    finished = _manage(db, "runjob", JOB, *side)
    assert finished.returncode == 0, finished.stderr
    rows = db.query("SELECT title, search_title FROM tickets_ticket")
    assert len(rows) == ROWS
    assert all(search == normalise(title) for title, search in rows)
    assert {normalise(title) for title in AWKWARD} <= {search for _, search in rows}

    migrated = _manage(db, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert db.tickets_migrations()[-1] == "0003_ticket_search_title_not_null"
    assert not db.search_title_nullable()


@pytest.mark.postgres
def test_backfill__a_title_edited_during_the_chunk_keeps_its_own_search_title(
    own_database: OwnDatabase,
) -> None:
    """The job reads the title under the row's lock. Read without it, the application's
    edit (committed while the chunk waits for the row) would be overwritten with the old
    title's search title."""
    import psycopg2  # noqa: PLC0415

    db = own_database
    assert _manage(db, "migrate", "tickets", "0002_ticket_search_title").returncode == 0
    _rows_written_before_the_column(db)
    assert _manage(db, "migrate").returncode == 1  # batchjobs' tables, then the gate
    edited = "Edited  BY the app"
    app = psycopg2.connect(**(db.dsn or {}))
    try:
        with app.cursor() as cursor:  # what Ticket.save() writes, its row lock held
            cursor.execute(
                "UPDATE tickets_ticket SET title = %s, search_title = %s WHERE id = 1",
                (edited, normalise(edited)),
            )
        run = Cli(db.url).spawn("runjob", JOB, "--log-format", "json")
        waiting = (
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        wait_for(lambda: run.poll() is not None or db.query(waiting)[0][0], timeout=60)
        app.commit()
    finally:
        app.close()
    _, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert db.query("SELECT search_title FROM tickets_ticket WHERE id = 1") == [
        ("edited by the app",)
    ]
    assert db.query("SELECT count(*) FROM tickets_ticket WHERE search_title IS NULL") == [(0,)]


def test_backfill_and_gate__a_fresh_database_migrates_straight_through(
    own_database: OwnDatabase,
) -> None:
    """Nothing to fill, no run needed: the gate lets a new installation through."""
    migrated = _manage(own_database, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert own_database.tickets_migrations()[-1] == "0003_ticket_search_title_not_null"
    assert not own_database.search_title_nullable()


def test_backfill_and_gate__no_sql_side_on_sqlite(own_database: OwnDatabase) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only: PostgreSQL has the SQL side (see the test above)")
    assert _manage(own_database, "migrate").returncode == 0
    refused = _manage(own_database, "runjob", JOB, "--sql-side")
    assert refused.returncode == 2
    assert "has no SQL-side values on sqlite" in refused.stderr

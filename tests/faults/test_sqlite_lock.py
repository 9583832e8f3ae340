"""SQLite with another process holding the write lock: a second connection keeps
``BEGIN IMMEDIATE`` open on the test database file while real ``manage.py`` processes try
to control or start a run. They must answer in one line with exit 75 (try again), soon,
and record nothing."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator

import pytest
from django.db import connection

from batchjobs import control
from batchjobs.exceptions import RunNotResumable
from batchjobs.models import State
from tests.faults.helpers import live_run

JOB = "rotate_ticket_tokens"


@contextlib.contextmanager
def _write_locked() -> Iterator[None]:
    """The test database's write lock, held by another connection for the block."""
    holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.fixture(autouse=True)
def _sqlite_only() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's database-wide write lock; PostgreSQL locks rows (test_locks.py)")


@pytest.mark.parametrize(
    "action", [["--pause"], ["--cancel"], ["--tune", "--sleep", "1"]], ids=lambda a: a[0]
)
def test_runjob__control_while_another_process_writes_is_one_line_exit_75(
    cli, action: list[str]
) -> None:
    live = live_run(JOB)  # committed before the lock is taken
    with _write_locked():
        started = time.monotonic()
        result = cli.run("runjob", JOB, *action)
        waited = time.monotonic() - started
    assert result.returncode == 75, result.stderr
    assert result.stderr == (
        f"CommandError: Nothing was asked of {JOB}: another process has held the SQLite "
        "database's write lock for over 5 s; try again in a moment.\n"
    )
    assert 5 <= waited < 12  # a control waits 5 s, not the run's 20 s
    live.refresh_from_db()
    assert (live.state, live.requested_action, live.tuning) == (State.RUNNING, "", {})


def test_runjob__start_while_another_process_writes_is_one_line_exit_75(cli) -> None:
    with _write_locked():
        result = cli.run("runjob", JOB, "--log-format", "json")
    assert result.returncode == 75, result.stderr
    assert result.stderr == (
        f"CommandError: Could not claim a run of {JOB}: the database is busy (database is "
        "locked); try again in a moment. Nothing was changed.\n"
    )
    assert result.stdout == ""


def test_runjob__control_puts_back_the_connections_wait(db) -> None:
    """The shorter wait is for the request only: the connection keeps its own after."""
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        before = cursor.fetchone()[0]
    with pytest.raises(RunNotResumable):
        control.request(JOB, "pause")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] == before == 20_000

"""Fixtures of the fault tests.

``rotation_audit`` is the shared one from tests/conftest.py on PostgreSQL; on SQLite the
same count is kept by an SQLite trigger, so that the faults every database can suffer
(kills, signals, failing code, concurrent runs, pause/cancel) are judged on both passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import RotationAudit
from tests.faults.helpers import Processes


class _Counts:
    connection: Any

    def counts(self) -> dict[int, int]:
        """``{ticket id: committed token changes}`` (rows never changed are absent)."""
        with self.connection.cursor() as c:
            c.execute("SELECT id, n FROM rotation_audit")
            return dict(c.fetchall())


class PostgresAudit(_Counts, RotationAudit):
    pass


class SqliteAudit(_Counts):
    """The audit trigger of tests/conftest.py, in SQLite's dialect."""

    def __init__(self) -> None:
        from django.db import connection  # noqa: PLC0415

        self.connection = connection
        with connection.cursor() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS rotation_audit "
                "(id integer PRIMARY KEY, n integer NOT NULL)"
            )
            c.execute("DELETE FROM rotation_audit")
            c.execute("DROP TRIGGER IF EXISTS rotation_audit")
            c.execute(
                """
                CREATE TRIGGER rotation_audit AFTER UPDATE OF token ON tickets_ticket
                FOR EACH ROW WHEN OLD.token IS NOT NEW.token
                BEGIN
                  INSERT INTO rotation_audit (id, n) VALUES (NEW.id, 1)
                  ON CONFLICT (id) DO UPDATE SET n = n + 1;
                END
                """
            )

    def summary(self, *, upto: int | None = None) -> dict[str, int]:
        with self.connection.cursor() as c:
            c.execute(
                """
                SELECT coalesce(a.n, 0) AS n, count(*) FROM tickets_ticket t
                LEFT JOIN rotation_audit a ON a.id = t.id
                WHERE %s IS NULL OR t.id <= %s GROUP BY 1
                """,
                [upto, upto],
            )
            counts = dict(c.fetchall())
        return {
            "never": counts.get(0, 0),
            "once": counts.get(1, 0),
            "more": sum(v for k, v in counts.items() if k > 1),
        }

    def drop(self) -> None:
        with self.connection.cursor() as c:
            c.execute("DROP TRIGGER IF EXISTS rotation_audit")
            c.execute("DROP TABLE IF EXISTS rotation_audit")


@pytest.fixture
def rotation_audit(transactional_db: None) -> Iterator[PostgresAudit | SqliteAudit]:
    from django.db import connection  # noqa: PLC0415

    audit = PostgresAudit() if connection.vendor == "postgresql" else SqliteAudit()
    yield audit
    audit.drop()


@pytest.fixture
def procs(transactional_db: None) -> Iterator[Processes]:
    """Live runner processes; any still running when the test ends is killed by its pid."""
    processes = Processes()
    yield processes
    processes.cleanup()

"""What the library asks of the database beyond the ORM: its clock, per-transaction
timeouts, table size and vacuum. PostgreSQL-only parts are no-ops elsewhere."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import models


def now(connection: Any) -> datetime:
    """The database's clock. Heartbeats are written and judged by it, so clock skew
    between the hosts that run and watch a job cannot make a live run look stalled."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT CURRENT_TIMESTAMP")
        value = cursor.fetchone()[0]
    if isinstance(value, str):  # SQLite: 'YYYY-MM-DD HH:MM:SS' in UTC
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def set_local_timeouts(
    connection: Any, *, statement_seconds: float | None, lock_seconds: float | None
) -> None:
    """``statement_timeout`` and ``lock_timeout`` for the current transaction only.

    ``SET LOCAL`` semantics (``set_config(..., true)``): the limits end with the
    transaction, and they hold behind PgBouncer's transaction pooling, unlike a ``SET``.
    PostgreSQL counts whole milliseconds and reads 0 as "no timeout", so a positive value
    is sent as at least 1 ms (never 0), and at most the largest value it accepts.
    """
    if connection.vendor != "postgresql":
        return

    def _milliseconds(seconds: float) -> str:
        return f"{min(max(round(seconds * 1000), 1), 2_147_483_647)}ms"  # a 32-bit int

    settings = []
    if statement_seconds:
        settings.append(("statement_timeout", _milliseconds(statement_seconds)))
    if lock_seconds:
        settings.append(("lock_timeout", _milliseconds(lock_seconds)))
    if not settings:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in settings),
            [part for pair in settings for part in pair],
        )


def table_bytes(connection: Any, model: type[models.Model]) -> int | None:
    """Heap, indexes and TOAST of the model's table (PostgreSQL); ``None`` elsewhere."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_total_relation_size(%s::regclass)",
            [connection.ops.quote_name(model._meta.db_table)],
        )
        return int(cursor.fetchone()[0])


def vacuum_analyze(connection: Any, model: type[models.Model]) -> None:
    """``VACUUM ANALYZE`` the table (PostgreSQL; it cannot run inside a transaction)."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(model._meta.db_table)}")

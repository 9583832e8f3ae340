"""What the library asks of the database beyond the ORM: its clock, per-transaction
timeouts, table size and vacuum. PostgreSQL-only parts are no-ops elsewhere."""

from __future__ import annotations

import contextlib
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from django.db import DatabaseError, models

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper


def now(connection: BaseDatabaseWrapper) -> datetime:
    """The database's clock. Heartbeats are written and judged by it, so clock skew
    between the hosts that run and watch a job cannot make a live run look stalled."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT CURRENT_TIMESTAMP")
        value: datetime | str = cursor.fetchone()[0]
    if isinstance(value, str):  # SQLite: 'YYYY-MM-DD HH:MM:SS' in UTC
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def set_local_timeouts(
    connection: BaseDatabaseWrapper, *, statement_seconds: float | None, lock_seconds: float | None
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


def table_bytes(connection: BaseDatabaseWrapper, model: type[models.Model]) -> int | None:
    """Heap, indexes and TOAST of the model's table (PostgreSQL); ``None`` elsewhere."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_total_relation_size(%s::regclass)",
            [connection.ops.quote_name(model._meta.db_table)],
        )
        return int(cursor.fetchone()[0])


def lock_holders(connection: BaseDatabaseWrapper, table: str) -> str:
    """Who holds locks on ``table``, for an error message: ``pid 812 (psql, idle in
    transaction, AccessExclusiveLock)``. PostgreSQL only; empty elsewhere or on failure."""
    if connection.vendor != "postgresql":
        return ""
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT a.pid, coalesce(nullif(a.application_name, ''), a.usename), a.state, "
                "l.mode FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.relation = to_regclass(%s) AND l.granted "
                "AND a.pid <> pg_backend_pid() ORDER BY a.pid LIMIT 3",
                [connection.ops.quote_name(table)],
            )
            rows = cursor.fetchall()
    except Exception:  # only a message depends on it
        return ""
    return "; ".join(f"pid {pid} ({who}, {state}, {mode})" for pid, who, state, mode in rows)


def vacuum_analyze(
    connection: BaseDatabaseWrapper, model: type[models.Model], *, lock_seconds: float | None = None
) -> None:
    """``VACUUM ANALYZE`` the table (PostgreSQL), waiting at most ``lock_seconds`` for its
    lock (SHARE UPDATE EXCLUSIVE: another VACUUM, autovacuum or DDL holds it otherwise).

    VACUUM cannot run inside a transaction, so the limit is a session ``SET``, reset
    afterwards. Behind PgBouncer's transaction pooling the SET and the VACUUM may reach
    different server connections: there, VACUUM by hand (docs/operations.md).
    """
    if connection.vendor != "postgresql":
        return
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        if lock_seconds:
            cursor.execute("SELECT set_config('lock_timeout', %s, false)", [_ms(lock_seconds)])
        try:
            cursor.execute(f"VACUUM ANALYZE {table}")
        finally:
            if lock_seconds and connection.is_usable():
                cursor.execute("RESET lock_timeout")


def _ms(seconds: float) -> str:
    """A PostgreSQL duration; never 0 for a positive value (0 would mean no limit)."""
    return f"{max(1, math.ceil(seconds * 1000))}ms"


def cancel_statement(connection: BaseDatabaseWrapper) -> None:
    """Cancel the statement in flight, from another thread: psycopg2's ``cancel``
    (libpq's PQcancel) and sqlite3's ``interrupt`` are both safe to call so."""
    raw = connection.connection
    cancel = getattr(raw, "cancel", None) or getattr(raw, "interrupt", None)
    if cancel is not None:
        with contextlib.suppress(Exception):
            cancel()


def reset_connection(connection: BaseDatabaseWrapper) -> None:
    """Drop a broken connection; Django opens a new one on the next query."""
    with contextlib.suppress(DatabaseError):
        connection.close()
    connection.connection = None


def reset_if_broken(connection: BaseDatabaseWrapper) -> None:
    if connection.connection is not None and not connection.is_usable():
        reset_connection(connection)

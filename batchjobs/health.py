"""Database-health checks that make a run back off while the database is under strain.

A check is any callable ``check(connection) -> Verdict | None``; ``None`` means healthy.
``BATCHJOBS_HEALTH_CHECKS`` lists dotted paths to them (classes are instantiated with no
arguments). The runner asks between chunks and, while a check says so, waits and says
why in a ``job.throttled`` event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper


@dataclass(frozen=True)
class Verdict:
    reason: str
    wait_seconds: float


HealthCheck = Callable[["BaseDatabaseWrapper"], Verdict | None]


# The largest replay lag of the streaming replicas, in seconds; 0 with none (or unreadable).
_PG_STAT_REPLICATION_LAG = (
    "SELECT coalesce(max(extract(epoch FROM replay_lag)), 0) FROM pg_stat_replication"
)


class ReplicationLag:
    """Back off while a streaming replica replays more than ``max_lag_seconds`` behind.

    Reads ``pg_stat_replication`` on the primary; with no replicas it is always healthy.
    The role needs ``pg_monitor`` to read the lag columns: without it they are NULL and the
    check cannot see lag (docs/operations.md).

    ``query`` is the SQL that reads the lag: one row, one column, seconds (NULL reads as no
    lag). Pass your own where ``pg_stat_replication`` cannot see the replicas that matter
    (a managed service's read replicas, a replica fed by WAL archive); tests pass a fixed
    reading (``"SELECT 12.5"``), which still runs on the real connection.
    """

    def __init__(
        self,
        max_lag_seconds: float = 10.0,
        wait_seconds: float = 5.0,
        query: str = _PG_STAT_REPLICATION_LAG,
    ) -> None:
        self.max_lag_seconds = max_lag_seconds
        self.wait_seconds = wait_seconds
        self.query = query

    def __call__(self, connection: BaseDatabaseWrapper) -> Verdict | None:
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute(self.query)
            lag = float(cursor.fetchone()[0] or 0)
        if lag > self.max_lag_seconds:
            return Verdict(
                f"replication lag {lag:.1f}s > {self.max_lag_seconds}s", self.wait_seconds
            )
        return None


class LockWaits:
    """Back off while other sessions have waited on a lock for more than ``min_wait_seconds``.

    Between chunks the job holds no locks, so waiters are the application's own contention:
    adding the job's writes to it would only make it worse. Counts this database only; the
    role needs ``pg_read_all_stats`` (or ``pg_monitor``) to see other roles' sessions.
    """

    def __init__(
        self, max_waiters: int = 0, min_wait_seconds: float = 1.0, wait_seconds: float = 2.0
    ) -> None:
        self.max_waiters = max_waiters
        self.min_wait_seconds = min_wait_seconds
        self.wait_seconds = wait_seconds

    def __call__(self, connection: BaseDatabaseWrapper) -> Verdict | None:
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database() AND pid <> pg_backend_pid() "
                "AND now() - query_start > make_interval(secs => %s)",
                [self.min_wait_seconds],
            )
            waiters = int(cursor.fetchone()[0])
        if waiters > self.max_waiters:
            return Verdict(
                f"{waiters} sessions waiting on locks for over {self.min_wait_seconds}s",
                self.wait_seconds,
            )
        return None


def load(paths: tuple[str, ...]) -> list[HealthCheck]:
    checks = []
    for path in paths:
        obj = import_string(path)
        checks.append(obj() if isinstance(obj, type) else obj)
    return checks

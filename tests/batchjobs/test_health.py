"""The health checks on the real database, and a run that throttles on them.

``LockWaits`` is shown real lock waits: a session of the test's own holds a row lock and
others queue behind it. ``ReplicationLag`` cannot see a replica here, so it is given the
reading to take through its ``query``, which still runs on the real connection.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg2
import pytest
from django.db import connection
from django.db.utils import ConnectionHandler
from structlog.testing import capture_logs

from batchjobs.health import LockWaits, ReplicationLag, Verdict
from batchjobs.models import JobRun, State
from batchjobs.options import RunOptions
from batchjobs.runner import Runner
from tests.batchjobs.fakes import InstantStopper, InstantTime, RecordingRotation
from tests.batchjobs.health_checks import LAG_READINGS
from tests.conftest import wait_for
from tests.faults.helpers import pg_session
from tests.testapp.models import Item

PROBE = "health_test_lock_probe"


class Contention:
    """Real lock waits: a session holds a row lock, and each queued session asks for the
    same row in a thread of its own and waits. In the test database, or in ``dbname``."""

    def __init__(self, dbname: str = "") -> None:
        self.dbname = dbname
        self.waiters: list[tuple[Any, threading.Thread]] = []
        self.holder = pg_session(application_name="health_lock_holder", dbname=dbname)
        with self.holder.cursor() as c:
            c.execute(f"CREATE TABLE IF NOT EXISTS {PROBE} (id int PRIMARY KEY)")
            c.execute(f"INSERT INTO {PROBE} VALUES (1) ON CONFLICT DO NOTHING")
        self.holder.commit()
        with self.holder.cursor() as c:
            c.execute(f"SELECT id FROM {PROBE} WHERE id = 1 FOR UPDATE")

    def queue(self, waiters: int = 1, *, waited: float = 0.3) -> None:
        """Start ``waiters`` sessions waiting; return once each has waited ``waited`` s."""
        pids = []
        for _ in range(waiters):
            session = pg_session(application_name="health_lock_waiter", dbname=self.dbname)
            pids.append(session.get_backend_pid())
            thread = threading.Thread(target=_take_the_row, args=(session,), daemon=True)
            thread.start()
            self.waiters.append((session, thread))
        wait_for(lambda: _waiting(pids, longer_than=waited), timeout=10)

    def release(self) -> None:
        """End the wait: the holder lets go, each waiter gets the row in turn and lets go."""
        self.holder.rollback()
        for _, thread in self.waiters:
            thread.join(timeout=30)

    def close(self) -> None:
        self.release()
        with self.holder.cursor() as c:
            c.execute(f"DROP TABLE IF EXISTS {PROBE}")
        self.holder.commit()
        for session, _ in self.waiters:
            session.close()
        self.holder.close()


def _take_the_row(session: Any) -> None:
    with contextlib.suppress(psycopg2.Error), session.cursor() as c:
        c.execute("SET statement_timeout = '30s'")  # gives up by itself if a test never lets go
        c.execute(f"SELECT id FROM {PROBE} WHERE id = 1 FOR UPDATE")
    session.rollback()


def _waiting(pids: list[int], *, longer_than: float) -> bool:
    """Whether every one of ``pids`` has waited on a lock for ``longer_than`` seconds, in
    whichever database (seen from the test's connection, not through the check)."""
    with connection.cursor() as c:
        c.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s) "
            "AND wait_event_type = 'Lock' AND now() - query_start > make_interval(secs => %s)",
            [pids, longer_than],
        )
        return c.fetchone()[0] == len(pids)


@pytest.fixture
def contention(transactional_db: None) -> Iterator[Contention]:
    made = Contention()
    yield made
    made.close()


@pytest.fixture
def other_database(transactional_db: None) -> Iterator[str]:
    """Another database on the same server, as another application's would be."""
    name = f"health_other_app_{os.getpid()}"
    admin = pg_session(autocommit=True, application_name="health_admin")
    with admin.cursor() as c:
        c.execute(f'CREATE DATABASE "{name}"')
    yield name
    with admin.cursor() as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


@pytest.fixture
def sqlite_connection() -> Iterator[Any]:
    """A real SQLite connection, whichever database this pass of the suite runs on."""
    handler = ConnectionHandler(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    )
    sqlite = handler["default"]
    yield sqlite
    # Django ignores close() on an in-memory database (closing would drop it); close the
    # driver's connection itself, or Python 3.13 reports it unclosed in a later test.
    if sqlite.connection is not None:
        sqlite.connection.close()


# -- ReplicationLag ----------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_replication_lag__above_the_limit_asks_to_wait() -> None:
    check = ReplicationLag(max_lag_seconds=10.0, wait_seconds=5.0, query="SELECT 12.5")
    assert check(connection) == Verdict("replication lag 12.5s > 10.0s", 5.0)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("reading", ["9.5", "10.0"])
def test_replication_lag__up_to_the_limit_is_healthy(reading: str) -> None:
    assert ReplicationLag(max_lag_seconds=10.0, query=f"SELECT {reading}")(connection) is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "query",
    [
        "SELECT NULL",
        # No replicas, or a role without pg_monitor (the lag columns read NULL).
        "SELECT max(extract(epoch FROM replay_lag)) FROM pg_stat_replication",
    ],
)
def test_replication_lag__a_null_reading_is_healthy(query: str) -> None:
    assert ReplicationLag(query=query)(connection) is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_replication_lag__reads_pg_stat_replication_by_default() -> None:
    # No replica streams from the test server: the default statement reads a lag of 0.
    assert ReplicationLag()(connection) is None
    below_zero = ReplicationLag(max_lag_seconds=-1.0)
    assert below_zero(connection) == Verdict("replication lag 0.0s > -1.0s", 5.0)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_replication_lag__reads_on_the_connection_it_is_given() -> None:
    with connection.cursor() as c:
        c.execute("SELECT set_config('health_test.lag', '42', false)")
    check = ReplicationLag(query="SELECT current_setting('health_test.lag')::float8")
    assert check(connection) == Verdict("replication lag 42.0s > 10.0s", 5.0)


@pytest.mark.django_db
def test_replication_lag__on_sqlite_is_always_healthy(sqlite_connection: Any) -> None:
    check = ReplicationLag(query="SELECT 12.5")
    with sqlite_connection.cursor() as c:
        c.execute(check.query)  # the reading would be there to take ...
        assert c.fetchone() == (12.5,)
    assert check(sqlite_connection) is None  # ... but SQLite has no replicas to lag


# -- LockWaits ---------------------------------------------------------------------------


@pytest.mark.postgres
def test_lock_waits__a_session_waiting_longer_than_min_wait_asks_to_wait(
    contention: Contention,
) -> None:
    check = LockWaits(min_wait_seconds=0.2)
    assert check(connection) is None
    contention.queue()
    assert check(connection) == Verdict("1 sessions waiting on locks for over 0.2s", 2.0)
    contention.release()
    assert check(connection) is None


@pytest.mark.postgres
def test_lock_waits__counts_every_waiter_and_tolerates_max_waiters(
    contention: Contention,
) -> None:
    contention.queue(2)
    assert LockWaits(min_wait_seconds=0.2)(connection) == Verdict(
        "2 sessions waiting on locks for over 0.2s", 2.0
    )
    assert LockWaits(max_waiters=1, min_wait_seconds=0.2)(connection) == Verdict(
        "2 sessions waiting on locks for over 0.2s", 2.0
    )
    assert LockWaits(max_waiters=2, min_wait_seconds=0.2)(connection) is None


@pytest.mark.postgres
def test_lock_waits__a_wait_shorter_than_min_wait_does_not_count(
    contention: Contention,
) -> None:
    contention.queue()
    assert LockWaits(min_wait_seconds=60)(connection) is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_lock_waits__in_another_database_do_not_count(other_database: str) -> None:
    elsewhere = Contention(dbname=other_database)
    try:
        elsewhere.queue()  # waiting, for over 0.3 s, as seen from this database
        assert LockWaits(min_wait_seconds=0.2)(connection) is None
    finally:
        elsewhere.close()


@pytest.mark.django_db
def test_lock_waits__on_sqlite_is_always_healthy(sqlite_connection: Any) -> None:
    assert LockWaits(min_wait_seconds=0)(sqlite_connection) is None


# -- a run throttling on them ------------------------------------------------------------


@pytest.fixture
def lag_readings(transactional_db: None) -> Iterator[Callable[..., None]]:
    """Queue the readings ``tests.batchjobs.health_checks.lagging_replica`` will take."""
    with connection.cursor() as c:
        c.execute(f"CREATE TABLE {LAG_READINGS} (id serial PRIMARY KEY, seconds float8)")

    def queue(*seconds: float) -> None:
        with connection.cursor() as c:
            c.executemany(
                f"INSERT INTO {LAG_READINGS} (seconds) VALUES (%s)", [[s] for s in seconds]
            )

    yield queue
    with connection.cursor() as c:
        c.execute(f"DROP TABLE IF EXISTS {LAG_READINGS}")


def _named(logs: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == event]


@pytest.mark.postgres
@pytest.mark.usefixtures("small_chunks")
def test_run__waits_while_a_replica_lags_then_does_every_row(
    seed_items: Callable[[int], int], lag_readings: Callable[..., None], settings: Any
) -> None:
    settings.BATCHJOBS_HEALTH_CHECKS = ["tests.batchjobs.health_checks.lagging_replica"]
    seed_items(50)
    lag_readings(12.5, 30.0, 11.0)  # then none: the replica has caught up
    clock = InstantTime()  # the waits are counted, not slept
    job = RecordingRotation()
    # --max-runtime: a check that never stops objecting fails the test instead of hanging it.
    options = RunOptions(batch_size=10, max_runtime=60)
    with capture_logs() as logs:
        outcome = Runner(job, options, stopper=InstantStopper(clock), clock=clock).run()

    throttled = _named(logs, "job.throttled")
    assert [(e["reason"], e["wait_seconds"]) for e in throttled] == [
        ("replication lag 12.5s > 10.0s", 5.0),
        ("replication lag 30.0s > 10.0s", 5.0),
        ("replication lag 11.0s > 10.0s", 5.0),
    ]
    # It waited before writing anything, then did every row once.
    first_progress = logs.index(_named(logs, "job.progress")[0])
    assert logs.index(throttled[-1]) < first_progress
    assert outcome.state == State.SUCCEEDED
    assert sorted(job.processed) == sorted(Item.objects.values_list("id", flat=True))
    assert set(job.processed.values()) == {1}
    run = JobRun.objects.get(pk=outcome.run_id)
    assert (run.done, run.total) == (50, 50)
    # The run's clock moved only while it waited: its 15 s are the three throttled waits.
    (finished,) = _named(logs, "job.finished")
    assert finished["duration_seconds"] == 15.0


@pytest.mark.postgres
@pytest.mark.usefixtures("small_chunks")
def test_run__waits_while_another_session_waits_on_a_lock(
    seed_items: Callable[[int], int], contention: Contention, settings: Any
) -> None:
    settings.BATCHJOBS_HEALTH_CHECKS = ["tests.batchjobs.health_checks.lock_contention"]
    seed_items(50)
    contention.queue()  # the application's own contention, before the run starts
    chunk_started: list[float] = []
    job = RecordingRotation(before=lambda job, chunk: chunk_started.append(time.monotonic()))
    released: list[float] = []
    ran = threading.Event()

    def release_after_three_waits(logs: list[dict[str, Any]]) -> None:
        # The contention ends once the run has waited three times (or has ended without).
        while len(_named(logs, "job.throttled")) < 3 and not ran.is_set():
            time.sleep(0.02)
        released.append(time.monotonic())
        contention.release()

    with capture_logs() as logs:
        releaser = threading.Thread(target=release_after_three_waits, args=(logs,))
        releaser.start()
        try:
            # --max-runtime: a check that never stops objecting fails the test, not hangs it
            outcome = Runner(job, RunOptions(batch_size=10, max_runtime=20)).run()
        finally:
            ran.set()
            releaser.join(timeout=30)

    throttled = _named(logs, "job.throttled")
    assert len(throttled) >= 3
    assert {(e["reason"], e["wait_seconds"]) for e in throttled} == {
        ("1 sessions waiting on locks for over 0.2s", 0.25)
    }
    # No chunk before the contention was over; then every row, once.
    assert chunk_started[0] > released[0]
    assert outcome.state == State.SUCCEEDED
    assert set(job.processed.values()) == {1}
    assert len(job.processed) == 50
    run = JobRun.objects.get(pk=outcome.run_id)
    assert (run.done, run.total) == (50, 50)
    (finished,) = _named(logs, "job.finished")
    assert finished["duration_seconds"] >= sum(e["wait_seconds"] for e in throttled)

"""Shared fixtures: the database URL for real subprocesses, the CLI, seeding, and a
database-side audit of how many times each row's token changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

# The job authors' testing kit, as a job author's project would load it: its fixtures
# (``job_runner``) for every test.
pytest_plugins = ["batchjobs.testing"]

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ONLY = (
    "needs PostgreSQL: it runs in the PostgreSQL pass of `make test` "
    "(point that pass at a server with DATABASE_URL=postgres://USER:PASS@HOST:PORT/DB)"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from django.db import connection  # noqa: PLC0415 - settings are ready only now

    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason=POSTGRES_ONLY)
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """Give each pytest session its own test database, so that two suites on one machine
    (two checkouts, a developer and CI) never drop each other's database mid-run."""
    from django.conf import settings  # noqa: PLC0415

    suffix = f"p{os.getpid()}"
    for db in settings.DATABASES.values():
        test = db.setdefault("TEST", {})
        name = test.get("NAME")
        if not name:
            if db["ENGINE"].endswith("sqlite3"):
                continue
            name = f"test_{db['NAME']}"
        test["NAME"] = f"{name}_{suffix}"


def database_url() -> str:
    """A URL for the test database, for the real processes a test starts."""
    from django.db import connection  # noqa: PLC0415

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    user = quote(s.get("USER") or "")
    password = f":{quote(s['PASSWORD'])}" if s.get("PASSWORD") else ""
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{s['NAME']}"


@dataclass
class Cli:
    """``manage.py`` in a real subprocess against the test database."""

    url: str

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.url,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "PYTHONUNBUFFERED": "1",
            "BATCHJOBS_EXTRA_JOB_PACKAGES": "tests.scenario_jobs",
            **extra,
        }

    def run(
        self, *args: str, timeout: float = 180, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env(**(env or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env(**(env or {})),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture
def cli(transactional_db: None) -> Cli:
    return Cli(database_url())


@pytest.fixture
def procs(transactional_db: None) -> Iterator[Any]:
    """Live runner processes (``tests.faults.helpers.Processes``); any still running when
    the test ends is killed by its pid."""
    from tests.faults.helpers import Processes  # noqa: PLC0415 - it imports this module

    processes = Processes()
    yield processes
    processes.cleanup()


@pytest.fixture
def receiver() -> Iterator[Any]:
    """A local HTTP receiver for outside effects (``tests.support.receiver.Receiver``)."""
    from tests.support.receiver import running_receiver  # noqa: PLC0415

    with running_receiver() as running:
        yield running


@pytest.fixture
def seed(transactional_db: None) -> Callable[[int], int]:
    from tickets.seeding import seed as seed_rows  # noqa: PLC0415

    return seed_rows


def events_of(output: str) -> list[dict[str, Any]]:
    """The JSON event lines of a run's stdout."""
    found = []
    for raw in output.splitlines():
        line = raw.strip()
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def wait_for(predicate: Callable[[], Any], *, timeout: float = 60, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


class RotationAudit:
    """Counts, in the database, every committed change of each row's token.

    A trigger appends to an audit table inside the writing transaction, so a rolled-back
    chunk leaves no count: the counts are exactly the committed rotations. One subclass per
    database dialect; the ``rotation_audit`` fixture picks the one in use.
    """

    def __init__(self) -> None:
        from django.db import connection  # noqa: PLC0415

        self.connection = connection
        with connection.cursor() as c:
            for statement in self.install:
                c.execute(statement)

    install: tuple[str, ...] = ()
    drop_trigger = ""

    def counts(self) -> dict[int, int]:
        """``{ticket id: committed token changes}`` (rows never changed are absent)."""
        with self.connection.cursor() as c:
            c.execute("SELECT id, n FROM rotation_audit")
            return dict(c.fetchall())

    def summary(self, *, upto: int | None = None) -> dict[str, int]:
        """``{"never": a, "once": b, "more": c}`` over the tickets with ``id <= upto``."""
        from tickets.models import Ticket  # noqa: PLC0415

        ids = Ticket.objects.values_list("id", flat=True)
        if upto is not None:
            ids = ids.filter(id__lte=upto)
        counts = self.counts()
        per_row = [counts.get(i, 0) for i in ids.iterator()]
        return {
            "never": per_row.count(0),
            "once": per_row.count(1),
            "more": sum(1 for n in per_row if n > 1),
        }

    def drop(self) -> None:
        with self.connection.cursor() as c:
            c.execute(self.drop_trigger)
            c.execute("DROP TABLE IF EXISTS rotation_audit")


class PostgresAudit(RotationAudit):
    install = (
        "CREATE TABLE IF NOT EXISTS rotation_audit (id bigint PRIMARY KEY, n int NOT NULL)",
        "TRUNCATE rotation_audit",
        """
        CREATE OR REPLACE FUNCTION rotation_audit_count() RETURNS trigger AS $$
        BEGIN
          INSERT INTO rotation_audit (id, n) VALUES (NEW.id, 1)
          ON CONFLICT (id) DO UPDATE SET n = rotation_audit.n + 1;
          RETURN NEW;
        END $$ LANGUAGE plpgsql
        """,
        "DROP TRIGGER IF EXISTS rotation_audit ON tickets_ticket",
        "CREATE TRIGGER rotation_audit AFTER UPDATE OF token ON tickets_ticket "
        "FOR EACH ROW WHEN (OLD.token IS DISTINCT FROM NEW.token) "
        "EXECUTE FUNCTION rotation_audit_count()",
    )
    drop_trigger = "DROP TRIGGER IF EXISTS rotation_audit ON tickets_ticket"


class SqliteAudit(RotationAudit):
    install = (
        "CREATE TABLE IF NOT EXISTS rotation_audit (id integer PRIMARY KEY, n integer NOT NULL)",
        "DELETE FROM rotation_audit",
        "DROP TRIGGER IF EXISTS rotation_audit",
        """
        CREATE TRIGGER rotation_audit AFTER UPDATE OF token ON tickets_ticket
        FOR EACH ROW WHEN OLD.token IS NOT NEW.token
        BEGIN
          INSERT INTO rotation_audit (id, n) VALUES (NEW.id, 1)
          ON CONFLICT (id) DO UPDATE SET n = n + 1;
        END
        """,
    )
    drop_trigger = "DROP TRIGGER IF EXISTS rotation_audit"


@pytest.fixture
def rotation_audit(transactional_db: None) -> Iterator[RotationAudit]:
    from django.db import connection  # noqa: PLC0415

    audit = PostgresAudit() if connection.vendor == "postgresql" else SqliteAudit()
    yield audit
    audit.drop()

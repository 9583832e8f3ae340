"""What every fault test needs: live runner processes, table snapshots, exactly-once checks.

Fault tests start real ``manage.py runjob`` processes, hurt them (signals, kills, locks,
lost connections) and then judge three things: the table (every row present at the start
rotated exactly once, as counted by the database-side audit trigger; nothing else changed),
the run's record (``JobRun``) and what the operator was told (exit code, stderr, events).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from batchjobs.models import JobRun, State
from tests.conftest import Cli, wait_for

SLOW = "scenario_slow_rotation"
FAILING = "scenario_failing_rotation"
COLLIDING = "scenario_colliding_rotation"
SLOW_STATEMENT = "scenario_slow_statement_rotation"
WRITE_BACK = "scenario_write_back_rotation"
ROTATE = "rotate_ticket_tokens"


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def writer_room(seconds: float = 0.15) -> tuple[str, ...]:
    """``--sleep`` for a run that other writers must get past, on SQLite only.

    SQLite has one writer at a time, and a waiting writer polls (every 100 ms once it has
    waited a while): a run taking the write lock for chunk after chunk, back to back,
    starves it (see test_concurrency.py). Between chunks the runner holds no transaction,
    so ``--sleep`` gives the others their turn, as the runbook would tell an operator.
    """
    return () if is_postgres() else ("--sleep", str(seconds))


# -- the table -------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    token: uuid.UUID
    token_issued_at: datetime
    title: str
    status: str
    created_at: datetime
    updated_at: datetime

    def others(self) -> tuple[Any, ...]:
        """Every column a rotation must leave alone."""
        return (self.title, self.status, self.created_at, self.updated_at)


def snapshot() -> dict[int, Row]:
    from tickets.models import Ticket  # noqa: PLC0415

    return {
        pk: Row(*rest)
        for pk, *rest in Ticket.objects.values_list(
            "id", "token", "token_issued_at", "title", "status", "created_at", "updated_at"
        )
    }


def assert_rotated_exactly_once(
    audit: Any,
    before: dict[int, Row],
    *,
    app_writes: dict[int, tuple[str, str]] | None = None,
    deleted: Iterable[int] = (),
) -> dict[int, Row]:
    """Every row of ``before`` (still present) rotated exactly once, nothing else changed.

    ``app_writes`` are the (title, status) the application wrote meanwhile: those must be
    what the table holds now (no lost update). Returns the table as it is now.
    """
    deleted = set(deleted)
    after = snapshot()
    hwm = max(before)
    counts = audit.counts()
    present = [pk for pk in before if pk not in deleted]
    wrong = {pk: counts.get(pk, 0) for pk in present if counts.get(pk, 0) != 1}
    assert not wrong, (
        f"{len(wrong)} of {len(present)} rows present at the start were not rotated exactly "
        f"once (id: times): {dict(list(sorted(wrong.items()))[:10])}"
    )
    summary = audit.summary(upto=hwm)
    assert summary == {"never": 0, "once": len(present), "more": 0}, summary
    assert not deleted & after.keys(), "a deleted row came back"
    missing = [pk for pk in present if pk not in after]
    assert not missing, f"rows lost: {missing[:10]}"
    unchanged_token = [pk for pk in present if after[pk].token == before[pk].token]
    assert not unchanged_token, f"tokens not changed: {unchanged_token[:10]}"
    tokens = [r.token for r in after.values()]
    assert len(set(tokens)) == len(tokens), "duplicate tokens"
    assert not {r.token for r in before.values()} & set(tokens), "an old token is still in use"
    app_writes = app_writes or {}
    for pk in present:
        if pk in app_writes:
            got = (after[pk].title, after[pk].status)
            assert got == app_writes[pk], f"row {pk}: the application's write was lost: {got}"
        else:
            got_other = after[pk].others()
            assert got_other == before[pk].others(), (
                f"row {pk}: a column other than the token changed"
            )
        assert after[pk].token_issued_at > before[pk].token_issued_at
    return after


def assert_checkpoint_consistent(
    audit: Any, run: JobRun, keys: list[int], *, quarantined: Iterable[int] = ()
) -> None:
    """The committed work is exactly the rows up to the cursor (less the rows set aside):
    no more, no fewer; ``done`` counts the committed rows only, never the ones set aside."""
    counts = audit.counts()
    cursor = run.cursor if run.cursor is not None else 0
    aside = set(quarantined)
    expected = [pk for pk in keys if pk <= cursor and pk not in aside]
    rotated = sorted(pk for pk in keys if counts.get(pk, 0))
    assert rotated == expected, (
        f"checkpoint (cursor {run.cursor}, done {run.done}) and committed rotations disagree: "
        f"{len(rotated)} rows rotated, {len(expected)} up to the cursor"
    )
    assert all(counts.get(pk, 0) == 1 for pk in rotated), "a row rotated twice before the end"
    assert run.done == len(expected), (run.done, len(expected), len(aside))
    assert run.quarantined == len(aside), (run.quarantined, len(aside))


def token_forms(rows: Iterable[Row]) -> set[str]:
    """Every spelling of every token a leak could take: hyphenated and 32 hex digits."""
    forms: set[str] = set()
    for row in rows:
        forms.add(str(row.token).lower())
        forms.add(row.token.hex.lower())
    return forms


def leaked(text: str, forms: set[str]) -> list[str]:
    lowered = text.lower()
    return sorted(f for f in forms if f in lowered)


# -- the run's record --------------------------------------------------------------------


def runs_of(job: str) -> list[JobRun]:
    return list(JobRun.objects.filter(job=job).order_by("id"))


def live_run(job: str) -> JobRun:
    """An unfinished run owned by a live process on this host that is not the command
    under test (this test process's parent), with a fresh heartbeat."""
    return JobRun.objects.create(
        job=job,
        state=State.RUNNING,
        owner_token="live",
        owner_host=socket.gethostname(),
        owner_pid=os.getppid(),
        heartbeat_at=timezone.now(),
    )


def latest_run(job: str) -> JobRun | None:
    return JobRun.objects.filter(job=job).order_by("-id").first()


# -- live processes ------------------------------------------------------------------------


@dataclass
class Live:
    """A running ``manage.py`` whose stdout and stderr are read as they come."""

    proc: subprocess.Popen[str]
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    _readers: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            reader = threading.Thread(target=_pump, args=(stream, sink), daemon=True)
            reader.start()
            self._readers.append(reader)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        found = []
        for raw in list(self.out):
            line = raw.strip()
            if line.startswith("{"):
                event = json.loads(line)
                if name is None or event.get("event") == name:
                    found.append(event)
        return found

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            self.wait(timeout=5)
            raise AssertionError(
                f"the runner exited early with {self.proc.returncode}:\n{self.stderr}\n"
                f"{self.stdout[-3000:]}"
            )

    def wait_event(
        self, name: str, where: Callable[[dict[str, Any]], bool] = lambda e: True, timeout=60
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            hits = [e for e in self.events(name) if where(e)]
            if hits:
                return hits[0]
            self.check_alive()
            return None

        return wait_for(found, timeout=timeout)

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def kill9(self) -> None:
        """SIGKILL and reap (a zombie's pid would still look alive to the next run)."""
        self.signal(signal.SIGKILL)
        self.wait(timeout=10)

    def wait(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code


def _pump(stream: Any, sink: list[str]) -> None:
    with contextlib.suppress(ValueError, OSError):
        for line in stream:
            sink.append(line)
    with contextlib.suppress(OSError):
        stream.close()


class Processes:
    """Spawns live runners and kills whatever is left at the end of the test (by pid)."""

    def __init__(self) -> None:
        self.started: list[Live] = []

    def spawn(self, cli: Cli, *args: str, env: dict[str, str] | None = None) -> Live:
        live = Live(cli.spawn(*args, env=env))
        self.started.append(live)
        return live

    def cleanup(self) -> None:
        for live in self.started:
            if live.alive():
                with contextlib.suppress(ProcessLookupError):
                    live.proc.kill()
            with contextlib.suppress(Exception):
                live.wait(timeout=10)


def wait_done(job: str, at_least: int, live: Live, *, timeout: float = 60) -> JobRun:
    """Wait until the run's committed ``done`` reaches ``at_least`` (the runner must live)."""

    def reached() -> JobRun | None:
        run = latest_run(job)
        if run is not None and run.done >= at_least:
            return run
        live.check_alive()
        return None

    return wait_for(reached, timeout=timeout, every=0.02)


def runner_cli(cli: Cli, application_name: str) -> Cli:
    """The same CLI whose connections name themselves in ``pg_stat_activity``."""
    if not cli.url.startswith("postgres"):
        return cli
    sep = "&" if "?" in cli.url else "?"
    return Cli(f"{cli.url}{sep}application_name={application_name}")


# -- PostgreSQL sessions of the test's own ---------------------------------------------


def pg_session(
    *, autocommit: bool = False, application_name: str = "faults_test", dbname: str = ""
) -> Any:
    """A psycopg2 connection of the test's own to the test database (another 'user')."""
    import psycopg2  # noqa: PLC0415

    s = connection.settings_dict
    conn = psycopg2.connect(
        dbname=dbname or s["NAME"],
        user=s.get("USER") or None,
        password=s.get("PASSWORD") or None,
        host=s.get("HOST") or "127.0.0.1",
        port=s.get("PORT") or 5432,
        application_name=application_name,
    )
    conn.autocommit = autocommit
    return conn


def backends(application_name: str, *, where: str = "true") -> list[tuple[Any, ...]]:
    with connection.cursor() as c:
        c.execute(
            "SELECT pid, state, wait_event_type, xact_start IS NOT NULL FROM pg_stat_activity "
            f"WHERE application_name = %s AND datname = current_database() AND {where}",
            [application_name],
        )
        return c.fetchall()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

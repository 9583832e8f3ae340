"""The application keeps working while the rotation runs: it edits titles and statuses
(full-row saves of instances loaded before the rotation reached them, and queryset
updates), creates tickets and deletes some. No write of the application may be lost,
deleted rows stay deleted, new tickets keep the tokens they were born with, and every row
present at the start is rotated exactly once."""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import threading
import time

import pytest
from django.db import close_old_connections, connection

from batchjobs.models import State
from tests.faults.helpers import (
    ROTATE,
    SLOW,
    assert_rotated_exactly_once,
    latest_run,
    pg_session,
    runs_of,
    snapshot,
    wait_done,
    writer_room,
)
from tickets.models import Ticket


class _Application(threading.Thread):
    """The live application, on its own database connection."""

    def __init__(self, start_keys: list[int], seed: int) -> None:
        super().__init__(daemon=True)
        self.start_keys = start_keys
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.writes: dict[int, tuple[str, str]] = {}
        self.deleted: set[int] = set()
        self.created: dict[int, object] = {}
        self.stale_saves = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            step = 0
            while not self.stop.is_set():
                step += 1
                self._one(step)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc
        finally:
            connection.close()

    def _pick(self) -> int:
        while True:
            pk = self.rng.choice(self.start_keys)
            if pk not in self.deleted:
                return pk

    def _one(self, step: int) -> None:
        roll = self.rng.random()
        if roll < 0.35:
            # A full save of an instance loaded a moment ago: by the time it is saved, the
            # rotation may have given the row a new token, which must survive the save.
            ticket = Ticket.objects.get(pk=self._pick())
            time.sleep(0.01)
            ticket.title = f"edited by the app, step {step}"
            ticket.status = Ticket.Status.PENDING
            ticket.save()
            self.writes[ticket.pk] = (ticket.title, ticket.status)
            self.stale_saves += 1
        elif roll < 0.7:
            pk = self._pick()
            title = f"renamed by the app, step {step}"
            Ticket.objects.filter(pk=pk).update(title=title, status=Ticket.Status.CLOSED)
            self.writes[pk] = (title, Ticket.Status.CLOSED)
        elif roll < 0.85:
            ticket = Ticket.objects.create(title=f"created by the app, step {step}")
            self.created[ticket.pk] = ticket.token
        else:
            pk = self._pick()
            Ticket.objects.filter(pk=pk).delete()
            self.deleted.add(pk)
            self.writes.pop(pk, None)
        time.sleep(0.005)


@pytest.mark.django_db(transaction=True)
def test_live_application_traffic__no_lost_update_new_rows_untouched_exactly_once(
    seed, cli, rotation_audit, procs
) -> None:
    seed(4_000)
    before = snapshot()
    keys = sorted(before)
    live = procs.spawn(
        cli, "runjob", SLOW, "--batch-size", "100", "--log-format", "json", *writer_room(0.1),
        env={"SCENARIO_CHUNK_SLEEP": "0.05"},
    )  # fmt: skip
    wait_done(SLOW, 0, live)  # the run exists: its high-water mark is fixed
    run = latest_run(SLOW)
    assert run is not None and run.high_water_mark == keys[-1]

    app = _Application(keys, seed=random.SystemRandom().randrange(10**6))
    app.start()
    try:
        code = live.wait(timeout=120)
    finally:
        app.stop.set()
        app.join(timeout=30)
        close_old_connections()
    assert app.error is None, f"the application failed: {app.error!r}"
    assert code == 0, live.stderr
    assert app.stale_saves >= 10 and app.created and app.deleted, "too little traffic to judge"

    (run,) = runs_of(SLOW)
    assert run.state == State.SUCCEEDED
    assert run.total == 4_000
    # Rows deleted before their chunk came are not counted: they were not there to rotate.
    assert 4_000 - len(app.deleted) <= run.done <= 4_000
    after = assert_rotated_exactly_once(
        rotation_audit, before, app_writes=app.writes, deleted=app.deleted
    )
    counts = rotation_audit.counts()
    for pk, token in app.created.items():
        assert pk > int(run.high_water_mark)
        assert after[pk].token == token, f"ticket {pk}, created during the run, was rotated"
        assert pk not in counts


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_lock_waits_in_another_database__do_not_throttle_the_run(
    seed, cli, rotation_audit, procs
) -> None:
    seed(2_000)
    before = snapshot()
    other_db = f"faults_other_app_{os.getpid()}"
    admin = pg_session(autocommit=True, application_name="faults_admin")
    with admin.cursor() as c:
        c.execute(f'CREATE DATABASE "{other_db}"')
    holder = waiter = None
    try:
        # Another application, in its own database on the same server: one session holds a
        # lock and another has waited on it for a while.
        holder = pg_session(
            autocommit=True, application_name="faults_other_holder", dbname=other_db
        )
        waiter = pg_session(
            autocommit=True, application_name="faults_other_waiter", dbname=other_db
        )
        with holder.cursor() as c:
            c.execute("SELECT pg_advisory_lock(4242)")
        blocked = threading.Thread(target=_wait_for_lock, args=(waiter,), daemon=True)
        blocked.start()
        time.sleep(1.5)  # longer than LockWaits' default min_wait_seconds

        live = procs.spawn(cli, "runjob", ROTATE, "--batch-size", "500", "--log-format", "json")
        with contextlib.suppress(subprocess.TimeoutExpired):
            live.wait(timeout=6)
        throttled = live.events("job.throttled")
        assert throttled == [], f"throttled by another database's lock wait: {throttled[0]}"
        assert not live.alive(), "the run did not finish in 6 s"
        assert live.proc.returncode == 0, live.stderr
    finally:
        if holder is not None:
            holder.close()  # releases the lock; the waiter gets it and returns
        if waiter is not None:
            waiter.close()
        procs.cleanup()
        with admin.cursor() as c:
            c.execute(f'DROP DATABASE IF EXISTS "{other_db}" WITH (FORCE)')
        admin.close()
    assert_rotated_exactly_once(rotation_audit, before)


def _wait_for_lock(session: object) -> None:
    with contextlib.suppress(Exception), session.cursor() as c:  # type: ignore[attr-defined]
        c.execute("SELECT pg_advisory_lock(4242)")

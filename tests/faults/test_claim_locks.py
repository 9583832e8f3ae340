"""A claim that meets a lock says which lock: the job's table held by someone else is not
"another process is starting", and a locked run row whose owner is dead is not "already
running"."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from batchjobs.exit_codes import ExitCode
from batchjobs.models import JobRun, State
from tests.faults.helpers import ROTATE, pg_session


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_claim__a_locked_table_is_named_with_its_holder(seed, cli) -> None:
    seed(100)
    holder = pg_session(application_name="migration_in_progress")
    try:
        with holder.cursor() as c:
            c.execute("LOCK TABLE tickets_ticket IN ACCESS EXCLUSIVE MODE")
            c.execute("SELECT pg_backend_pid()")
            (pid,) = c.fetchone()
        started = time.monotonic()
        result = cli.run("runjob", ROTATE)
        took = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
    assert result.returncode == ExitCode.BUSY, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "The table tickets_ticket stayed locked by another session for over 5s" in line
    assert f"pid {pid} (migration_in_progress, idle in transaction, AccessExclusiveLock)" in line
    assert "nothing was changed" in line
    assert "Another process is starting" not in line
    assert took < 20
    assert not JobRun.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_claim__a_locked_run_row_with_no_live_owner_is_not_called_running(seed, cli) -> None:
    seed(100)
    run = JobRun.objects.create(
        job=ROTATE, state=State.INTERRUPTED, done=10, total=100, heartbeat_at=timezone.now()
    )
    holder = pg_session()
    try:
        with holder.cursor() as c:
            c.execute("SELECT id FROM batchjobs_jobrun WHERE id = %s FOR UPDATE", [run.pk])
        result = cli.run("runjob", ROTATE)
    finally:
        holder.rollback()
        holder.close()
    assert result.returncode == ExitCode.BUSY, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"Run #{run.pk} of {ROTATE} (interrupted, no live process) stayed locked" in line
    assert "already running" not in line
    assert "last heartbeat" not in line

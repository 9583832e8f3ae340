"""Whatever ends or takes a run away from its process (``--restart``, ``--cancel``, a
takeover) fences that process out: frozen with SIGSTOP past its lease, then thawed with
SIGCONT, it must write nothing more, and exit with the lease-lost code and a sentence
that says what happened to its run.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import time
from typing import Any

import pytest
from django.db import connection, transaction

from batchjobs.exit_codes import ExitCode
from batchjobs.lease import alive
from batchjobs.models import JobRun, State
from tests.conftest import wait_for
from tests.faults.helpers import (
    SLOW,
    Live,
    assert_rotated_exactly_once,
    latest_run,
    runs_of,
    snapshot,
    wait_done,
)

ROWS = 3_000
ARGS = ("runjob", SLOW, "--batch-size", "100", "--log-format", "json")
SHORT_LEASE = {"DJANGO_SETTINGS_MODULE": "tests.faults.settings_short_lease"}
# Short chunks and long sleeps between them: the process is frozen between chunks.
FROZEN_RUNNER_ENV = {**SHORT_LEASE, "SCENARIO_CHUNK_SLEEP": "0.01"}


def _run_row_free(run_id: int) -> bool:
    """Is the run row free right now (no chunk of a frozen process holding it)?"""
    if connection.vendor == "sqlite":
        probe = sqlite3.connect(connection.settings_dict["NAME"], timeout=0.2)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.rollback()
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            probe.close()
    from django.db import OperationalError  # noqa: PLC0415

    try:
        with transaction.atomic():
            JobRun.objects.select_for_update(nowait=True).filter(pk=run_id).exists()
        return True
    except OperationalError:
        return False


def _freeze_between_chunks(live: Live, run_id: int) -> None:
    """SIGSTOP the runner at a moment it holds no transaction (as an operator's stray
    Ctrl-Z or a VM pause would catch it, most of the time)."""
    for _ in range(50):
        live.signal(signal.SIGSTOP)
        time.sleep(0.05)
        if _run_row_free(run_id):
            return
        live.signal(signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("could not catch the runner between two chunks")


@pytest.fixture
def short_lease(settings: Any) -> None:
    settings.BATCHJOBS_HEARTBEAT_SECONDS = 0.5
    settings.BATCHJOBS_STALE_AFTER_SECONDS = 3.0


def _frozen_run(cli: Any, procs: Any) -> tuple[Live, JobRun]:
    """A runner frozen mid-run until its lease went stale."""
    first = procs.spawn(cli, *ARGS, "--sleep", "0.3", env=FROZEN_RUNNER_ENV)
    run = wait_done(SLOW, 500, first)
    _freeze_between_chunks(first, run.pk)
    wait_for(lambda: not alive(JobRun.objects.get(pk=run.pk)), timeout=30)
    return first, JobRun.objects.get(pk=run.pk)


def _thaw(first: Live) -> tuple[int, str]:
    first.signal(signal.SIGCONT)
    code = first.wait(timeout=60)
    return code, first.stderr.strip().splitlines()[-1]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_restart__fences_out_the_frozen_old_process(
    seed, cli, rotation_audit, procs, short_lease
) -> None:
    seed(ROWS)
    first, frozen = _frozen_run(cli, procs)

    second = cli.run(*ARGS, "--restart", env=SHORT_LEASE)
    assert second.returncode == 0, second.stderr
    old, new = runs_of(SLOW)
    assert (old.pk, old.state, old.owner_token) == (frozen.pk, State.ABANDONED, "")
    assert new.state == State.SUCCEEDED
    counts = rotation_audit.counts()

    code, last_line = _thaw(first)
    assert code == ExitCode.BUSY, first.stderr
    assert f"Run #{frozen.pk} of {SLOW} was abandoned" in last_line, last_line
    assert "--restart" in last_line
    assert "wrote nothing" in last_line
    assert "Traceback" not in first.stderr
    assert rotation_audit.counts() == counts, "the fenced-out process rotated rows again"
    old.refresh_from_db()
    assert (old.done, old.cursor, old.state) == (frozen.done, frozen.cursor, State.ABANDONED)
    assert first.events("job.failed")[-1]["error_class"] == "LeaseLost"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_cancel__fences_out_the_frozen_old_process(
    seed, cli, rotation_audit, procs, short_lease
) -> None:
    seed(ROWS)
    first, frozen = _frozen_run(cli, procs)

    cancelled = cli.run("runjob", SLOW, "--cancel", env=SHORT_LEASE)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "had no live process and is now cancelled" in cancelled.stderr
    counts = rotation_audit.counts()

    code, last_line = _thaw(first)
    assert code == ExitCode.BUSY, first.stderr
    assert f"Run #{frozen.pk} of {SLOW} was cancelled" in last_line, last_line
    assert rotation_audit.counts() == counts
    run = JobRun.objects.get(pk=frozen.pk)
    assert (run.state, run.done, run.cursor) == (State.CANCELLED, frozen.done, frozen.cursor)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_takeover__fences_out_the_frozen_old_process(
    seed, cli, rotation_audit, procs, short_lease
) -> None:
    seed(ROWS)
    before = snapshot()
    first, frozen = _frozen_run(cli, procs)

    second = procs.spawn(cli, *ARGS, "--sleep", "0.3", env=FROZEN_RUNNER_ENV)
    second.wait_event("job.started")
    code, last_line = _thaw(first)
    assert code == ExitCode.BUSY, first.stderr
    assert f"Run #{frozen.pk} of {SLOW} was taken over by pid {second.pid}" in last_line
    assert second.wait() == 0, second.stderr
    assert runs_of(SLOW) == [frozen]
    assert_rotated_exactly_once(rotation_audit, before)
    with contextlib.suppress(AssertionError):
        assert latest_run(SLOW).state == State.SUCCEEDED

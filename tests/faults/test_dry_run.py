"""``runjob --dry-run`` against a database that keeps it waiting, and under stop signals, in
real processes: it waits no longer than its lock timeout, the first Ctrl-C (or SIGTERM) ends
it at once with the signal's exit code and one line, and nothing is changed."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from batchjobs.exit_codes import ExitCode
from tests.conftest import wait_for
from tests.faults.helpers import ROTATE, backends, pg_session, runner_cli, snapshot

LINGERING = "scenario_lingering_rotation"  # tests/scenario_jobs/side_effects.py
APP = "dry_run_under_test"


def _lock_table():  # -> psycopg2 connection holding the lock
    session = pg_session(application_name="dry_run_lock_holder")
    with session.cursor() as c:
        c.execute("LOCK TABLE tickets_ticket IN ACCESS EXCLUSIVE MODE")
    return session


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_dry_run__behind_a_table_lock_gives_up_after_the_lock_timeout(seed, cli, procs) -> None:
    seed(50)
    before = snapshot()
    holder = _lock_table()
    try:
        started = time.monotonic()
        live = procs.spawn(cli, "runjob", ROTATE, "--dry-run", "--lock-timeout", "1")
        code = live.wait(timeout=15)
        elapsed = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
    assert code == ExitCode.FAILED
    assert elapsed < 5, f"waited {elapsed:.1f}s behind the lock"
    line = _one_line(live.stderr)
    assert f"Dry run of {ROTATE} gave up waiting for a lock after 1s (--lock-timeout)" in line
    assert "Nothing was changed" in line
    assert snapshot() == before


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("signum", "code"),
    [
        (signal.SIGINT, ExitCode.INTERRUPTED_SIGINT),
        (signal.SIGTERM, ExitCode.INTERRUPTED_SIGTERM),
    ],
    ids=["SIGINT", "SIGTERM"],
)
def test_dry_run__a_stop_signal_during_a_lock_wait_ends_it_at_once(
    seed, cli, procs, signum: int, code: int
) -> None:
    seed(50)
    before = snapshot()
    holder = _lock_table()
    try:
        live = procs.spawn(
            runner_cli(cli, APP), "runjob", ROTATE, "--dry-run", "--lock-timeout", "600"
        )
        wait_for(lambda: backends(APP, where="wait_event_type = 'Lock'"), timeout=30)
        time.sleep(0.5)  # well into the wait
        live.signal(signum)
        sent = time.monotonic()
        assert live.wait(timeout=15) == code
        elapsed = time.monotonic() - sent
        assert backends(APP) == [], "the process must leave no session behind"
    finally:
        holder.rollback()
        holder.close()
    assert elapsed < 2, f"took {elapsed:.1f}s to stop"
    name = signal.Signals(signum).name
    assert _one_line(live.stderr) == (
        f"CommandError: Dry run of {ROTATE} stopped by {name}; nothing was changed."
    )
    assert snapshot() == before


@pytest.mark.django_db(transaction=True)
def test_dry_run__ctrl_c_while_the_job_code_runs_ends_it_at_once(
    seed, cli, procs, tmp_path: Path
) -> None:
    seed(50)
    before = snapshot()
    started = tmp_path / "started"
    live = procs.spawn(
        cli, "runjob", LINGERING, "--dry-run", env={"SCENARIO_STARTED_FILE": str(started)}
    )
    wait_for(lambda: started.exists() or live.proc.poll() is not None, timeout=60)
    assert live.alive(), live.stderr
    live.signal(signal.SIGINT)
    sent = time.monotonic()
    assert live.wait(timeout=15) == ExitCode.INTERRUPTED_SIGINT
    assert time.monotonic() - sent < 2
    assert _one_line(live.stderr) == (
        f"CommandError: Dry run of {LINGERING} stopped by SIGINT; nothing was changed."
    )
    assert snapshot() == before

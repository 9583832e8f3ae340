"""Row locks held by another session: the runner waits at most ``--lock-timeout``, retries
the chunk with backoff, and either finishes once the lock goes or fails clearly when its
attempts run out. A deadlock with another session is retried like any transient error."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from batchjobs.exit_codes import ExitCode
from batchjobs.models import State
from tests.conftest import events_of, wait_for
from tests.faults.helpers import (
    SLOW,
    assert_checkpoint_consistent,
    assert_rotated_exactly_once,
    backends,
    latest_run,
    pg_session,
    runner_cli,
    runs_of,
    snapshot,
)

ARGS = ("runjob", SLOW, "--batch-size", "100", "--log-format", "json")
FAST = {"SCENARIO_CHUNK_SLEEP": "0.01"}


def _lock_rows(keys: list[int]):  # -> psycopg2 connection holding the locks
    session = pg_session(application_name="faults_lock_holder")
    with session.cursor() as c:
        c.execute("SELECT id FROM tickets_ticket WHERE id = ANY(%s) FOR UPDATE", [keys])
        assert c.rowcount == len(keys)
    return session


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_locked_rows__runner_retries_on_lock_timeout_and_finishes_after_release(
    seed, cli, rotation_audit, procs
) -> None:
    seed(3_000)
    before = snapshot()
    keys = sorted(before)
    holder = _lock_rows(keys[520:540])  # inside the sixth chunk
    try:
        live = procs.spawn(cli, *ARGS, "--lock-timeout", "0.2", env=FAST)
        live.wait_event("job.retry", lambda e: e["attempt"] >= 2, timeout=30)
    finally:
        holder.rollback()
        holder.close()
    assert live.wait() == 0, live.stderr

    retries = live.events("job.retry")
    assert retries and {e["error_kind"] for e in retries} == {"lock_timeout"}, retries
    assert all(e["wait_seconds"] < 5 for e in retries), "the backoff should start small"
    assert all("55P03" in e["error"] for e in retries)
    (run,) = runs_of(SLOW)
    assert (run.state, run.done, run.chunks) == (State.SUCCEEDED, 3_000, 30)
    assert run.retries == len(retries)
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_locked_rows__run_fails_clearly_when_attempts_run_out_and_resumes_later(
    seed, cli, rotation_audit, procs
) -> None:
    seed(2_000)
    before = snapshot()
    keys = sorted(before)
    holder = _lock_rows(keys[520:540])
    try:
        few = {**FAST, "DJANGO_SETTINGS_MODULE": "tests.faults.settings_few_attempts"}
        failed = cli.run(*ARGS, "--lock-timeout", "0.2", env=few, timeout=60)
    finally:
        holder.rollback()
        holder.close()

    assert failed.returncode == ExitCode.FAILED, failed.stderr
    (line,) = failed.stderr.strip().splitlines()
    assert "Traceback" not in line
    assert "failed: lock_timeout (SQLSTATE 55P03)" in line
    assert f"`runjob {SLOW}` resumes it" in line
    events = events_of(failed.stdout)
    retries = [e for e in events if e["event"] == "job.retry"]
    assert [e["attempt"] for e in retries] == [1, 2]  # 3 attempts: two waits between them
    assert {e["error_kind"] for e in retries} == {"lock_timeout"}
    (failure,) = [e for e in events if e["event"] == "job.failed"]
    assert failure["error"].startswith("lock_timeout (SQLSTATE 55P03)")
    (run,) = runs_of(SLOW)
    assert (run.state, run.owner_token) == (State.FAILED, "")
    assert run.error_message.startswith("lock_timeout (SQLSTATE 55P03)")
    assert run.error_class.startswith("psycopg2.")
    assert run.cursor == keys[499], "the checkpoint stays at the last chunk that committed"
    assert_checkpoint_consistent(rotation_audit, run, keys)

    resumed = cli.run(*ARGS, env=FAST)
    assert resumed.returncode == 0, resumed.stderr
    run.refresh_from_db()
    assert (run.state, run.done, len(runs_of(SLOW))) == (State.SUCCEEDED, 2_000, 1)
    assert (run.error_class, run.error_message) == ("", "")
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_locked_rows__sigterm_during_the_retries_interrupts_promptly(
    seed, cli, rotation_audit, procs
) -> None:
    seed(2_000)
    before = snapshot()
    keys = sorted(before)
    holder = _lock_rows(keys[520:540])
    try:
        live = procs.spawn(cli, *ARGS, "--lock-timeout", "0.2", env=FAST)
        live.wait_event("job.retry", lambda e: e["attempt"] >= 3, timeout=30)  # backing off
        signalled = time.monotonic()
        live.signal(signal.SIGTERM)
        code = live.wait(timeout=30)
        took = time.monotonic() - signalled
    finally:
        holder.rollback()
        holder.close()

    assert code == ExitCode.INTERRUPTED_SIGTERM, live.stderr
    assert took < 2, f"a stop during the backoff took {took:.1f}s"
    assert "interrupted by SIGTERM after 500 of 2,000 rows" in live.stderr
    run = latest_run(SLOW)
    assert run is not None
    assert (run.state, run.owner_token, run.cursor) == (State.INTERRUPTED, "", keys[499])
    assert_checkpoint_consistent(rotation_audit, run, keys)

    resumed = cli.run(*ARGS, env=FAST)
    assert resumed.returncode == 0, resumed.stderr
    assert len(runs_of(SLOW)) == 1
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_deadlock_with_another_session__chunk_retried_exactly_once_and_app_write_kept(
    seed, cli, rotation_audit, procs
) -> None:
    seed(3_000)
    before = snapshot()
    keys = sorted(before)
    first, second = keys[510], keys[560]  # both in the sixth chunk, rotated in key order
    app = "faults_deadlock_runner"
    other = pg_session(application_name="faults_deadlock_app")
    with other.cursor() as c:
        # The other session waits long before checking for a deadlock, so the runner (1 s,
        # the server's default) is the one the server picks to abort.
        c.execute("SET deadlock_timeout = '20s'")
        c.execute("SELECT id FROM tickets_ticket WHERE id = %s FOR UPDATE", [second])
    live = procs.spawn(runner_cli(cli, app), *ARGS, env=FAST)
    try:
        # The runner's chunk has locked `first` and now waits for `second`...
        wait_for(lambda: backends(app, where="wait_event_type = 'Lock'"), timeout=30)

        def app_write() -> None:
            with other.cursor() as c:  # ...while the other session wants `first`: deadlock.
                c.execute(
                    "UPDATE tickets_ticket SET title = 'written during a deadlock' WHERE id = %s",
                    [first],
                )
            other.commit()

        writer = threading.Thread(target=app_write)
        writer.start()
        writer.join(timeout=30)
        assert not writer.is_alive(), "the other session stayed blocked: no deadlock was broken"
    finally:
        other.rollback()
        other.close()
    assert live.wait() == 0, live.stderr

    retries = live.events("job.retry")
    assert [e["error_kind"] for e in retries] == ["deadlock"], retries
    assert "40P01" in retries[0]["error"]
    (run,) = runs_of(SLOW)
    assert (run.state, run.done, run.chunks, run.retries) == (State.SUCCEEDED, 3_000, 30, 1)
    writes = {first: ("written during a deadlock", before[first].status)}
    assert_rotated_exactly_once(rotation_audit, before, app_writes=writes)

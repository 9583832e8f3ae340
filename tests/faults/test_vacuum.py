"""``--vacuum`` after a run: it says when VACUUM starts, waits a bounded time for the
table's lock, stops at the first Ctrl-C, and says why it did not complete. The run itself
has succeeded by then and stays succeeded."""

from __future__ import annotations

import signal
import time

import pytest

from batchjobs.models import JobRun, State
from tests.faults.helpers import ROTATE, pg_session

TABLE = "tickets_ticket"


@pytest.fixture
def vacuum_blocked(transactional_db: None):
    """Another session holds the lock VACUUM needs (as a running VACUUM would)."""
    blocker = pg_session()
    with blocker.cursor() as c:
        c.execute(f"LOCK TABLE {TABLE} IN SHARE UPDATE EXCLUSIVE MODE")
    yield blocker
    blocker.rollback()
    blocker.close()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_vacuum__lock_wait_is_bounded_and_the_cause_named(seed, cli, vacuum_blocked) -> None:
    seed(500)
    started = time.monotonic()
    done = cli.run("runjob", ROTATE, "--vacuum", "--lock-timeout", "1", "--log-format", "json")
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert took < 15, f"VACUUM waited {took:.1f}s behind the lock"
    assert '"event": "job.vacuum_started"' in done.stdout
    assert f"VACUUM did not complete ({TABLE} stayed locked for over 1s" in done.stderr
    assert f"run VACUUM ANALYZE {TABLE} by hand" in done.stderr
    assert JobRun.objects.get().state == State.SUCCEEDED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_vacuum__first_ctrl_c_cancels_it_and_says_so(seed, cli, procs, vacuum_blocked) -> None:
    seed(500)
    live = procs.spawn(cli, "runjob", ROTATE, "--vacuum", "--lock-timeout", "60")
    live.wait_event("job.vacuum_started", timeout=60)
    time.sleep(0.5)  # inside VACUUM's lock wait
    sent = time.monotonic()
    live.signal(signal.SIGINT)
    code = live.wait(timeout=30)
    assert time.monotonic() - sent < 5, "one Ctrl-C must end VACUUM's wait"
    assert code == 0, live.stderr
    (failed,) = live.events("job.vacuum_failed")
    assert failed["cause"] == "cancelled by SIGINT"
    assert "statement_timeout" not in live.stderr + live.stdout
    assert "VACUUM did not complete (cancelled by SIGINT)" in live.stderr
    assert JobRun.objects.get().state == State.SUCCEEDED

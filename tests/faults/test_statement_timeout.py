"""A chunk that runs into ``--statement-timeout``: its transaction is rolled back whole
(the rows it had already rotated included), the chunk is halved and tried again, and the
run finishes with every row rotated exactly once."""

from __future__ import annotations

import pytest
from django.db import connection

from batchjobs.models import State
from tests.conftest import events_of, wait_for
from tests.faults.helpers import (
    SLOW_STATEMENT,
    assert_rotated_exactly_once,
    backends,
    runner_cli,
    runs_of,
    snapshot,
)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_statement_timeout__chunk_shrunk_and_retried_never_partly_committed(
    seed, cli, rotation_audit
) -> None:
    seed(3_000)
    before = snapshot()
    # Chunks of more than 150 rows take a 2 s statement after rotating: past the 0.5 s limit.
    result = cli.run(
        "runjob",
        SLOW_STATEMENT,
        "--batch-size",
        "400",
        "--statement-timeout",
        "0.5",
        "--log-format",
        "json",
        env={"SCENARIO_SLOW_ABOVE": "150", "SCENARIO_SLOW_SECONDS": "2"},
    )
    assert result.returncode == 0, result.stderr

    events = events_of(result.stdout)
    retries = [e for e in events if e["event"] == "job.retry"]
    assert [(e["error_kind"], e["chunk_size"]) for e in retries] == [
        ("statement_timeout", 200),
        ("statement_timeout", 100),
    ], retries
    assert all("57014" in e["error"] for e in retries)
    (run,) = runs_of(SLOW_STATEMENT)
    assert (run.state, run.done, run.retries) == (State.SUCCEEDED, 3_000, 2)
    assert run.chunks == 30, "every chunk after the timeouts is 100 rows"
    # The audit trigger counts committed changes only: the rows each timed-out chunk had
    # already rotated were rolled back with it, so no row shows two rotations.
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_cancel_from_another_session__retried_as_a_cancel_not_halved(
    seed, cli, rotation_audit, procs
) -> None:
    """pg_cancel_backend() (a DBA's cancel) arrives as SQLSTATE 57014, like a statement
    timeout: the chunk is rolled back and retried, but reported as a cancel and not halved."""
    seed(1_000)
    before = snapshot()
    live = procs.spawn(
        runner_cli(cli, "cancelled_runner"),
        "runjob", SLOW_STATEMENT, "--batch-size", "400", "--log-format", "json",
        env={"SCENARIO_SLOW_ABOVE": "150", "SCENARIO_SLOW_SECONDS": "2"},
    )  # fmt: skip
    (pid, *_), *_ = wait_for(
        lambda: backends("cancelled_runner", where="query LIKE '%%pg_sleep%%'"), timeout=30
    )
    with connection.cursor() as c:
        c.execute("SELECT pg_cancel_backend(%s)", [pid])
    assert live.wait() == 0, live.stderr
    (retried,) = live.events("job.retry")
    assert (retried["error_kind"], retried["chunk_size"]) == ("query_cancelled", 400)
    assert retried["error"] == "query_cancelled (SQLSTATE 57014)"
    (run,) = runs_of(SLOW_STATEMENT)
    assert (run.state, run.done, run.chunks) == (State.SUCCEEDED, 1_000, 3)
    assert_rotated_exactly_once(rotation_audit, before)

"""A chunk that runs into ``--statement-timeout``: its transaction is rolled back whole
(the rows it had already rotated included), the chunk is halved and tried again, and the
run finishes with every row rotated exactly once."""

from __future__ import annotations

import pytest

from batchjobs.models import State
from tests.conftest import events_of
from tests.faults.helpers import (
    SLOW_STATEMENT,
    assert_rotated_exactly_once,
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

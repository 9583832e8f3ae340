"""A new token that collides with an existing one (a real violation of the unique index):
the chunk's transaction rolls back whole and is done again with fresh tokens, exactly once,
and the colliding value, which the database quotes in its error, is never repeated."""

from __future__ import annotations

import pytest

from batchjobs.models import QuarantinedRow, State
from tests.conftest import events_of
from tests.faults.helpers import (
    COLLIDING,
    assert_rotated_exactly_once,
    is_postgres,
    leaked,
    runs_of,
    snapshot,
    token_forms,
)


@pytest.mark.django_db(transaction=True)
def test_unique_violation__chunk_redone_with_fresh_tokens_exactly_once(
    seed, cli, rotation_audit
) -> None:
    seed(2_000)
    before = snapshot()
    keys = sorted(before)
    result = cli.run(
        "runjob",
        COLLIDING,
        "--batch-size",
        "200",
        "--log-format",
        "json",
        env={"SCENARIO_COLLIDE": "once", "SCENARIO_COLLIDE_KEY": str(keys[650])},
    )
    assert result.returncode == 0, result.stderr
    events = events_of(result.stdout)
    retries = [e for e in events if e["event"] == "job.retry"]
    if is_postgres():
        # SQLSTATE 23505: transient for a job of random values, retried once.
        assert [(e["error_kind"], e["attempt"]) for e in retries] == [("unique_violation", 1)]
        assert retries[0]["error"].startswith("unique_violation (SQLSTATE 23505)")
        assert "tickets_ticket_token" in retries[0]["error"]  # the constraint, by name
    else:
        # SQLite has no SQLSTATE: the error is not "transient", the chunk is split in
        # halves that are redone (with fresh tokens) instead, and nothing is set aside.
        assert retries == []
    (run,) = runs_of(COLLIDING)
    assert (run.state, run.done, run.quarantined) == (State.SUCCEEDED, 2_000, 0)
    assert not QuarantinedRow.objects.exists()
    after = assert_rotated_exactly_once(rotation_audit, before)
    forms = token_forms([*before.values(), *after.values()])
    assert leaked(result.stdout + result.stderr, forms) == []

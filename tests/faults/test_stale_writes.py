"""Old tokens written back after the rotation passed a row.

Through the model (an instance loaded before the rotation, saved in full after it) the
token is never written: ``Ticket.save`` leaves the token columns alone. Behind the model's
back (raw SQL putting an old token and its old issue time back), the run's verification
pass finds the rows and rotates them again before the run may call itself succeeded.
"""

from __future__ import annotations

import pytest

from batchjobs.models import State
from tests.conftest import events_of
from tests.faults.helpers import (
    ROTATE,
    WRITE_BACK,
    assert_rotated_exactly_once,
    runs_of,
    snapshot,
)
from tickets.models import Ticket


@pytest.mark.django_db(transaction=True)
def test_stale_instance_full_save_after_rotation__old_token_not_written_back(
    seed, cli, rotation_audit
) -> None:
    seed(2_000)
    before = snapshot()
    keys = sorted(before)
    stale = [Ticket.objects.get(pk=pk) for pk in (keys[0], keys[999], keys[-1])]

    result = cli.run("runjob", ROTATE, "--batch-size", "300", "--log-format", "json")
    assert result.returncode == 0, result.stderr

    for ticket in stale:
        assert ticket.token == before[ticket.pk].token  # the instance still holds the old one
        ticket.title = f"saved from a stale instance {ticket.pk}"
        ticket.save()  # a full save, no update_fields
    stale[1].refresh_from_db()  # ... and a save after a refresh is fine too
    stale[1].save()

    writes = {t.pk: (f"saved from a stale instance {t.pk}", before[t.pk].status) for t in stale}
    after = assert_rotated_exactly_once(rotation_audit, before, app_writes=writes)
    for ticket in stale:
        assert after[ticket.pk].token != before[ticket.pk].token
    # A second look by the job agrees: nothing is pending.
    (run,) = runs_of(ROTATE)
    assert run.verification == {"checked": 2_000, "stale_found": 0, "reswept": 0, "remaining": 0}


@pytest.mark.django_db(transaction=True)
def test_raw_sql_write_back_of_old_tokens__found_and_reswept_by_verification(
    seed, cli, rotation_audit
) -> None:
    seed(3_000)
    before = snapshot()
    keys = sorted(before)
    reverted = [keys[5], keys[1_500], keys[2_100]]
    result = cli.run(
        "runjob",
        WRITE_BACK,
        "--batch-size",
        "250",
        "--log-format",
        "json",
        env={"SCENARIO_WRITE_BACK_KEYS": ",".join(map(str, reverted))},
    )
    assert result.returncode == 0, result.stderr

    (verified,) = [e for e in events_of(result.stdout) if e["event"] == "job.verified"]
    assert (verified["stale_found"], verified["reswept"], verified["remaining"]) == (3, 3, 0)
    (run,) = runs_of(WRITE_BACK)
    assert run.state == State.SUCCEEDED
    assert run.verification["stale_found"] == 3 and run.verification["remaining"] == 0

    after = snapshot()
    counts = rotation_audit.counts()
    old_tokens = {r.token for r in before.values()}
    for pk in reverted:
        # rotated, written back, rotated again by the verification pass
        assert counts[pk] == 3, (pk, counts[pk])
        assert after[pk].token not in old_tokens
        assert after[pk].token_issued_at > before[pk].token_issued_at
    others = {pk: row for pk, row in before.items() if pk not in reverted}
    assert all(counts[pk] == 1 for pk in others)
    assert all(after[pk].token != row.token for pk, row in others.items())
    assert len({r.token for r in after.values()}) == len(after)

"""The rotation's SQL-side values (``gen_random_uuid()``), in process: the library's own
``--sql-side`` test runs the test app's job, so the real job's expressions are checked here."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from batchjobs.models import JobRun, State
from tickets.models import Ticket


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_runjob__sql_side_gives_every_ticket_a_fresh_version_4_token(seed) -> None:
    seed(500)
    before = dict(Ticket.objects.values_list("id", "token"))
    call_command(
        "runjob",
        "rotate_ticket_tokens",
        "--sql-side",
        "--batch-size",
        "100",
        "--log-format",
        "json",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    after = dict(Ticket.objects.values_list("id", "token"))
    assert after.keys() == before.keys()
    assert all(after[k] != before[k] for k in before)
    assert all(token.version == 4 for token in after.values())
    assert len(set(after.values())) == len(after)
    run = JobRun.objects.get(job="rotate_ticket_tokens")
    assert (run.state, run.done, run.options["sql_side"]) == (State.SUCCEEDED, 500, True)
    assert run.verification["remaining"] == 0

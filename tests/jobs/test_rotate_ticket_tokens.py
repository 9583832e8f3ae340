from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from batchjobs.models import JobRun, State
from tests.conftest import events_of
from tickets.models import Ticket


def _tokens() -> dict[int, str]:
    return dict(Ticket.objects.values_list("id", "token"))


@pytest.mark.django_db(transaction=True)
def test_runjob__rotates_every_token_once_and_finishes(seed) -> None:
    seed(2_500)
    before = _tokens()
    out = io.StringIO()
    call_command(
        "runjob", "rotate_ticket_tokens", "--log-format", "json", stdout=out, stderr=io.StringIO()
    )
    after = _tokens()
    assert after.keys() == before.keys()
    assert all(after[k] != before[k] for k in before)
    assert len(set(after.values())) == len(after)
    run = JobRun.objects.get(job="rotate_ticket_tokens")
    assert (run.state, run.done, run.total) == (State.SUCCEEDED, 2_500, 2_500)
    assert run.verification["remaining"] == 0


@pytest.mark.django_db(transaction=True)
def test_runjob__subprocess_exit_zero_and_json_events(seed, cli) -> None:
    seed(1_000)
    result = cli.run("runjob", "rotate_ticket_tokens", "--batch-size", "300")
    assert result.returncode == 0, result.stderr
    names = [e["event"] for e in events_of(result.stdout)]
    assert names[0] == "job.started" and names[-1] == "job.finished"

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from structlog.testing import capture_logs

from batchjobs.models import JobRun, State
from batchjobs.options import RunOptions
from batchjobs.runner import Runner
from tests.docs_examples.jobs.trim_ticket_titles import TrimTicketTitles
from tickets.models import Ticket


def _padded(n: int) -> None:
    Ticket.objects.bulk_create(
        [Ticket(title=f"  ticket {i} ") for i in range(n)] + [Ticket(title="clean")]
    )


@pytest.mark.django_db(transaction=True)  # per-chunk commits must really commit
def test_trim_ticket_titles__trims_every_padded_title() -> None:
    _padded(250)
    with capture_logs() as logs:
        outcome = Runner(TrimTicketTitles(), RunOptions(batch_size=100)).run()
    assert outcome.exit_code == 0
    assert not Ticket.objects.filter(title__startswith=" ").exists()
    run = JobRun.objects.get(pk=outcome.run_id)
    assert (run.state, run.done, run.total, run.chunks) == (State.SUCCEEDED, 250, 250, 3)
    names = [e["event"] for e in logs if e["event"] != "job.progress"]
    assert names == ["job.started", "job.verified", "job.finished"]


@pytest.mark.django_db(transaction=True)
def test_runjob__trim_ticket_titles_emits_json_events() -> None:
    _padded(10)
    out = io.StringIO()
    call_command(
        "runjob", "trim_ticket_titles", "--log-format", "json", stdout=out, stderr=io.StringIO()
    )
    events = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    assert events[-1]["event"] == "job.finished"
    assert events[-1]["state"] == "succeeded"

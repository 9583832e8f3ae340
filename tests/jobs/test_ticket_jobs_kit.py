"""The ticket jobs with parameters, with the testing kit. close_idle_tickets: stopped as
SIGTERM would stop it and resumed with its parameters, every idle ticket is closed by
exactly one committed chunk, although closing takes the ticket out of the job's own
queryset. post_closed_tickets: every closed ticket posted at least once, under one
idempotency key, to a real local HTTP receiver.

(backfill_ticket_search_title is not tested here: at the current schema its column is
NOT NULL, so there is nothing to backfill; tests/jobs/test_backfill_and_gate.py runs it
between its migrations, in real processes.)"""

from __future__ import annotations

import io
from datetime import timedelta

from django.core.management import call_command
from django.utils import timezone

from batchjobs.models import State
from batchjobs.options import RunOptions
from batchjobs.testing import JobRunner
from jobs.close_idle_tickets import CloseIdleTickets
from jobs.post_closed_tickets import PostClosedTickets
from tests.support.receiver import Receiver
from tickets.models import Ticket
from tickets.seeding import seed


def test_close_idle_tickets__stopped_and_resumed_closes_each_idle_ticket_once(
    job_runner: JobRunner,
) -> None:
    seed(400)
    not_closed = list(
        Ticket.objects.exclude(status=Ticket.Status.CLOSED).values_list("id", flat=True)
    )
    idle, busy = not_closed[::2], not_closed[1::2]  # every other one idle for 90 days
    Ticket.objects.filter(id__in=idle).update(updated_at=timezone.now() - timedelta(days=90))
    options = RunOptions(batch_size=50)

    stopped = job_runner.run(
        CloseIdleTickets, params={"days": 30}, options=options, stop_after_chunks=2
    )
    assert (stopped.outcome.exit_code, stopped.run.state) == (143, State.INTERRUPTED)
    assert stopped.run.parameters["days"] == 30

    resumed = job_runner.run(CloseIdleTickets, params={"days": 30}, options=options)
    assert (resumed.run.pk, resumed.run.state) == (stopped.run.pk, State.SUCCEEDED)
    job_runner.assert_each_row_once(idle)
    closed = Ticket.objects.filter(status=Ticket.Status.CLOSED)
    assert set(closed.filter(id__in=not_closed).values_list("id", flat=True)) == set(idle)
    assert not closed.filter(id__in=busy).exists()


def test_post_closed_tickets__stopped_and_resumed_posts_each_closed_ticket(
    job_runner: JobRunner, receiver: Receiver
) -> None:
    seed(300)
    closed = list(Ticket.objects.filter(status=Ticket.Status.CLOSED).values_list("id", flat=True))
    params = {"url": receiver.url}  # sensitive: a resume is given it again
    options = RunOptions(batch_size=20)

    stopped = job_runner.run(
        PostClosedTickets, params=params, options=options, stop_at_key=closed[50]
    )
    assert stopped.run.state == State.INTERRUPTED
    resumed = job_runner.run(PostClosedTickets, params=params, options=options)
    assert (resumed.run.pk, resumed.run.state) == (stopped.run.pk, State.SUCCEEDED)

    job_runner.assert_each_row_once(closed)
    job_runner.assert_effects_delivered(closed)
    assert sorted(body["id"] for body in receiver.bodies().values()) == closed


def test_close_idle_tickets__a_dry_run_rehearses_what_the_resume_would_close(
    job_runner: JobRunner,
) -> None:
    """An unfinished run keeps the cutoff it began with (its stored --as-of); a dry run
    given only --days must rehearse the rows the resume would close, not those a new run's
    cutoff (now) would."""
    seed(140)
    Ticket.objects.update(status=Ticket.Status.OPEN)
    ids = sorted(Ticket.objects.values_list("id", flat=True))
    now = timezone.now()
    Ticket.objects.filter(id__in=ids[:40]).update(updated_at=now - timedelta(days=200))
    Ticket.objects.filter(id__in=ids[40:]).update(updated_at=now - timedelta(days=60))
    as_of = now - timedelta(days=100)  # idle: not updated for 30 days before that
    stopped = job_runner.run(
        CloseIdleTickets,
        params={"days": 30, "as_of": as_of},
        options=RunOptions(batch_size=10),
        stop_after_chunks=1,
    )
    assert (stopped.run.state, stopped.run.done) == (State.INTERRUPTED, 10)

    out = io.StringIO()
    call_command("runjob", "close_idle_tickets", "--days", "30", "--dry-run", stdout=out)
    # The 30 left by the run's cutoff; by a cutoff made now it would be 130.
    assert "Dry run of close_idle_tickets on 30 rows (rolled back)" in out.getvalue()

"""``post_closed_tickets`` against a local HTTP receiver that counts deliveries per
``Idempotency-Key``: real ``runjob`` processes, killed with SIGKILL mid-run and resumed.
Every closed ticket is posted at least once, and any duplicate carries the same key."""

from __future__ import annotations

import io
import signal
from collections.abc import Callable

import pytest
from django.core.management import CommandError, call_command

from batchjobs.models import Effect, JobRun, State
from tests.conftest import Cli, wait_for
from tests.faults.helpers import Processes
from tests.support.receiver import Receiver
from tickets.models import Ticket

JOB = "post_closed_tickets"
ARGS = ("runjob", JOB, "--batch-size", "25", "--log-format", "json")


def _to(receiver: Receiver) -> tuple[str, ...]:
    """The job's arguments, its (sensitive) URL parameter included: a resume needs it
    again, since the run keeps only its digest."""
    return (*ARGS, "--url", receiver.url)


def _closed() -> dict[int, str]:
    return dict(Ticket.objects.filter(status="closed").values_list("id", "title"))


def test_post_closed_tickets__kill9_mid_run_then_resume_posts_every_closed_ticket(
    seed: Callable[[int], int], cli: Cli, procs: Processes, receiver: Receiver
) -> None:
    seed(600)
    closed = _closed()
    assert len(closed) == 200
    # First a kill in the worst place: after a post, before its record (a failpoint).
    first = cli.run(*_to(receiver), env={"BATCHJOBS_FAILPOINT": "after_delivery:40"})
    assert first.returncode == -signal.SIGKILL, first.stderr
    # Then a kill -9 from outside, wherever the run happens to be.
    receiver.delay = 0.01
    live = procs.spawn(cli, *_to(receiver))
    wait_for(lambda: receiver.delivered() >= 120 or live.check_alive(), timeout=60)
    live.kill9()
    receiver.delay = 0.0
    final = cli.run(*_to(receiver))
    assert final.returncode == 0, final.stderr
    for said in (first.stdout, first.stderr, live.stdout, live.stderr, final.stdout, final.stderr):
        assert receiver.url not in said, "the sensitive URL was shown"

    run = JobRun.objects.get(job=JOB)
    assert run.state == State.SUCCEEDED
    counts = receiver.counts()
    assert set(counts) == {f"{run.pk}:{pk}" for pk in closed}, "a closed ticket was not posted"
    duplicates = {key: n for key, n in counts.items() if n > 1}
    assert 1 <= len(duplicates) <= 2 and set(duplicates.values()) == {2}, duplicates
    for key, body in receiver.deliveries:
        pk = int(key.split(":")[1])
        assert body["id"] == pk and body["title"] == closed[pk] and body["status"] == "closed"
        assert "token" not in body
    assert not Effect.objects.filter(delivered_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_post_closed_tickets__dry_run_posts_nothing(
    seed: Callable[[int], int], receiver: Receiver
) -> None:
    seed(30)
    out = io.StringIO()
    call_command("runjob", JOB, "--dry-run", "--url", receiver.url, stdout=out)
    assert "  outside effects a run would deliver: 10 (none delivered)" in out.getvalue()
    assert "  rows that would change: 0" in out.getvalue()
    assert receiver.delivered() == 0


@pytest.mark.django_db(transaction=True)
def test_post_closed_tickets__a_url_that_is_not_http_is_refused_without_quoting_it() -> None:
    with pytest.raises(CommandError) as refused:
        call_command("runjob", JOB, "--url", "ftp://user:secret@example.com/x")
    # A sensitive parameter's validator is not quoted either: its help says what it takes.
    assert str(refused.value) == "--url: **** is not valid"
    assert not JobRun.objects.exists()

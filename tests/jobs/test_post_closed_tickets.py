"""``post_closed_tickets`` against a local HTTP receiver that counts deliveries per
``Idempotency-Key``: real ``runjob`` processes, killed with SIGKILL mid-run and resumed.
Every closed ticket is posted at least once, and any duplicate carries the same key."""

from __future__ import annotations

import io
import signal
from collections.abc import Callable

import pytest
from django.core.management import call_command

from batchjobs.models import Effect, JobRun, State
from tests.conftest import Cli, wait_for
from tests.faults.helpers import Processes
from tests.support.receiver import Receiver
from tickets.models import Ticket

JOB = "post_closed_tickets"
ARGS = ("runjob", JOB, "--batch-size", "25", "--log-format", "json")


def _to(receiver: Receiver, **extra: str) -> dict[str, str]:
    # TODO(params): the URL becomes a job parameter once job parameters land.
    return {"BATCHJOBS_WEBHOOK_URL": receiver.url, **extra}


def _closed() -> dict[int, str]:
    return dict(Ticket.objects.filter(status="closed").values_list("id", "title"))


def test_post_closed_tickets__kill9_mid_run_then_resume_posts_every_closed_ticket(
    seed: Callable[[int], int], cli: Cli, procs: Processes, receiver: Receiver
) -> None:
    seed(600)
    closed = _closed()
    assert len(closed) == 200
    # First a kill in the worst place: after a post, before its record (a failpoint).
    first = cli.run(*ARGS, env=_to(receiver, BATCHJOBS_FAILPOINT="after_delivery:40"))
    assert first.returncode == -signal.SIGKILL, first.stderr
    # Then a kill -9 from outside, wherever the run happens to be.
    receiver.delay = 0.01
    live = procs.spawn(cli, *ARGS, env=_to(receiver))
    wait_for(lambda: receiver.delivered() >= 120 or live.check_alive(), timeout=60)
    live.kill9()
    receiver.delay = 0.0
    final = cli.run(*ARGS, env=_to(receiver))
    assert final.returncode == 0, final.stderr

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
    seed: Callable[[int], int], receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(30)
    from jobs.post_closed_tickets import PostClosedTickets  # noqa: PLC0415

    monkeypatch.setattr(PostClosedTickets, "url", receiver.url)
    out = io.StringIO()
    call_command("runjob", JOB, "--dry-run", stdout=out)
    assert "  outside effects a run would deliver: 10 (none delivered)" in out.getvalue()
    assert "  rows that would change: 0" in out.getvalue()
    assert receiver.delivered() == 0

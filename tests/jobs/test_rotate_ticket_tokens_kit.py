"""rotate_ticket_tokens with the testing kit: stopped (as SIGTERM would stop it) and
resumed, every ticket's token is rotated by exactly one committed chunk."""

from __future__ import annotations

from batchjobs.models import State
from batchjobs.options import RunOptions
from batchjobs.testing import JobRunner
from jobs.rotate_ticket_tokens import RotateTicketTokens
from tickets.models import Ticket
from tickets.seeding import seed

OPTIONS = RunOptions(batch_size=100)


def _tokens() -> dict[int, str]:
    return dict(Ticket.objects.values_list("id", "token"))


def test_rotate_ticket_tokens__stopped_and_resumed_rotates_each_ticket_once(
    job_runner: JobRunner,
) -> None:
    seed(500)
    before = _tokens()

    stopped = job_runner.run(RotateTicketTokens, options=OPTIONS, stop_after_chunks=2)
    assert (stopped.outcome.exit_code, stopped.run.state) == (143, State.INTERRUPTED)
    assert stopped.run.done == 200

    resumed = job_runner.run(RotateTicketTokens, options=OPTIONS)
    assert (resumed.run.pk, resumed.run.state) == (stopped.run.pk, State.SUCCEEDED)
    job_runner.assert_each_row_once(Ticket.objects.all())
    after = _tokens()
    assert all(after[pk] != token for pk, token in before.items())
    assert len(set(after.values())) == len(after)


def test_rotate_ticket_tokens__stopped_at_a_key_resumes_after_it(job_runner: JobRunner) -> None:
    seed(300)
    middle = sorted(_tokens())[149]

    stopped = job_runner.run(RotateTicketTokens, options=OPTIONS, stop_at_key=middle)
    assert stopped.run.state == State.INTERRUPTED
    assert stopped.run.done == 200  # the chunk holding the key committed, then it stopped

    job_runner.run(RotateTicketTokens, options=OPTIONS)
    job_runner.assert_each_row_once(Ticket.objects.all())

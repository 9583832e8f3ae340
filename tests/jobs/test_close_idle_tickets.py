"""``close_idle_tickets`` through real ``runjob`` processes, on SQLite and PostgreSQL alike:
which tickets it closes, how its parameters are refused, and that a run interrupted and
resumed closes every idle ticket exactly once although each chunk removes its own rows
from the job's filter."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from batchjobs.exit_codes import ExitCode
from batchjobs.models import JobRun, State
from tests.conftest import events_of
from tickets.models import Ticket

JOB = "close_idle_tickets"
IDLE = 200  # the first 200 tickets were last touched 40 days ago; the others now


@pytest.fixture
def tickets(seed) -> dict[int, tuple[str, datetime, str]]:
    """300 tickets (statuses open, pending, closed in turn); the first 200 idle for 40
    days. Returns ``{id: (status, updated_at, token)}`` as seeded."""
    seed(300)
    old = timezone.now() - timedelta(days=40)
    first = sorted(Ticket.objects.values_list("id", flat=True))[:IDLE]
    Ticket.objects.filter(pk__in=first).update(updated_at=old)  # no auto_now on update()
    return _state()


def _state() -> dict[int, tuple[str, datetime, str]]:
    rows = Ticket.objects.values_list("id", "status", "updated_at", "token")
    return {pk: (status, updated, str(token)) for pk, status, updated, token in rows}


def _idle(before: dict[int, tuple[str, datetime, str]], statuses: set[str]) -> set[int]:
    first = set(sorted(before)[:IDLE])
    return {pk for pk, (status, *_) in before.items() if pk in first and status in statuses}


def _closed_by_the_run(before: dict[int, tuple[str, datetime, str]]) -> set[int]:
    after = _state()
    changed = {pk for pk in before if after[pk][0] != before[pk][0]}
    assert all(after[pk][0] == "closed" for pk in changed)
    assert all(after[pk][1] > before[pk][1] for pk in changed), "closing is an update"
    assert all(after[pk][2] == before[pk][2] for pk in before), "a token was touched"
    return changed


def _changed(stdout: str) -> int:
    (finished,) = [e for e in events_of(stdout) if e["event"] == "job.finished"]
    return int(finished["changed"])


def test_close_idle_tickets__closes_the_idle_open_and_pending_tickets_only(cli, tickets) -> None:
    before_start = timezone.now()
    result = cli.run("runjob", JOB, "--days", "30", "--batch-size", "7")
    assert result.returncode == 0, result.stderr
    idle = _idle(tickets, {"open", "pending"})
    assert _closed_by_the_run(tickets) == idle
    run = JobRun.objects.get(job=JOB)
    assert (run.state, run.done, run.total) == (State.SUCCEEDED, len(idle), len(idle))
    assert run.chunks == -(-len(idle) // 7)  # every chunk full but the last: none skipped
    assert _changed(result.stdout) == len(idle)
    assert run.verification["remaining"] == 0
    assert run.parameters["days"] == 30 and run.parameters["status"] is None
    # --as-of defaults to the moment the run is created, and is stored with it.
    assert before_start <= datetime.fromisoformat(run.parameters["as_of"]) <= run.started_at


def test_close_idle_tickets__status_narrows_it_to_one_status(cli, tickets) -> None:
    result = cli.run("runjob", JOB, "--days", "30", "--status", "pending")
    assert result.returncode == 0, result.stderr
    assert _closed_by_the_run(tickets) == _idle(tickets, {"pending"})


def test_close_idle_tickets__not_idle_long_enough_is_left_open(cli, tickets) -> None:
    result = cli.run("runjob", JOB, "--days", "41")
    assert result.returncode == 0, result.stderr
    assert _closed_by_the_run(tickets) == set()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "0"], "--days: 0 is below the minimum of 1"),
        (["--days", "-3"], "--days: -3 is below the minimum of 1"),
        (["--days", "abc"], "--days: 'abc' is not a whole number"),
        (["--days", "36501"], "--days: 36501 is over the maximum of 36500"),
        (["--days", "3", "--status", "closed"], "--status: 'closed' is not one of 'open', "),
        (["--days", "3", "--as-of", "yesterday"], "--as-of: 'yesterday' is not a date and time"),
        ([], "close_idle_tickets needs --days to start a run"),
    ],
    ids=["zero", "negative", "not-a-number", "too-many", "status", "as-of", "missing"],
)
def test_close_idle_tickets__a_bad_value_is_one_line_exit_2_and_nothing_written(
    cli, tickets, args: list[str], message: str
) -> None:
    result = cli.run("runjob", JOB, *args)
    assert result.returncode == ExitCode.USAGE
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"CommandError: {message}"), line
    assert result.stdout == ""
    assert not JobRun.objects.exists()
    assert _state() == tickets


def test_close_idle_tickets__a_resume_keeps_the_run_cutoff_and_closes_each_ticket_once(
    cli, tickets
) -> None:
    # Slow chunks, stopped after a few of them: a run that is unfinished part way. Its
    # moment is 5 days ago: the cutoff is 35 days ago, not the 30 a new run would use.
    as_of = timezone.now() - timedelta(days=5)
    first = cli.run(
        "runjob", JOB, "--days", "30", "--as-of", as_of.isoformat(), "--batch-size", "10",
        "--sleep", "0.3", "--max-runtime", "0.5",
    )  # fmt: skip
    assert first.returncode == ExitCode.MAX_RUNTIME, first.stderr
    run = JobRun.objects.get(job=JOB)
    idle = _idle(tickets, {"open", "pending"})
    assert run.state == State.INTERRUPTED and 0 < run.done < len(idle)
    assert datetime.fromisoformat(run.parameters["as_of"]) == as_of

    # Other parameters for the unfinished run: refused, with the way to start over.
    halfway = _state()
    refused = cli.run("runjob", JOB, "--days", "7")
    assert refused.returncode == ExitCode.USAGE
    (line,) = refused.stderr.splitlines()
    assert f"Run #{run.pk} of close_idle_tickets was started with other parameters: " in line
    assert "--days 7 (the run has 30)" in line
    assert line.endswith("python manage.py runjob close_idle_tickets --restart --days 7")
    assert _state() == halfway
    assert JobRun.objects.get(pk=run.pk).done == run.done
    # Without the required --days, the way to start over still names the run's.
    other_status = cli.run("runjob", JOB, "--status", "open")
    assert other_status.returncode == ExitCode.USAGE
    assert other_status.stderr.rstrip().endswith(
        "runjob close_idle_tickets --restart --days 30 --status open"
    )
    assert _state() == halfway

    # A ticket past the cursor last touched 33 days ago: idle by a cutoff made now (30
    # days), not by the run's (35). The resume must leave it open.
    late = max(idle)
    Ticket.objects.filter(pk=late).update(updated_at=timezone.now() - timedelta(days=33))

    # Resumed with no parameters at all: the stored --days and --as-of.
    second = cli.run("runjob", JOB, "--batch-size", "10")
    assert second.returncode == 0, second.stderr
    started = events_of(second.stdout)[0]
    assert started["parameters"] == {"days": 30, "status": None, "as_of": run.parameters["as_of"]}
    closed = _closed_by_the_run(tickets)
    assert closed == idle - {late}
    run.refresh_from_db()
    # The total was counted at the start; the late ticket left the filter since.
    assert (run.state, run.done, run.total) == (State.SUCCEEDED, len(idle) - 1, len(idle))
    # Each ticket closed exactly once over both sessions: the first session's chunks plus
    # the second's updates add up to the tickets closed, none twice and none skipped.
    first_session = sum(1 for pk in closed if halfway[pk][0] == "closed")
    assert first_session == done_at_interrupt(first.stdout)
    assert first_session + _changed(second.stdout) == len(closed)


def done_at_interrupt(stdout: str) -> int:
    (stopped,) = [e for e in events_of(stdout) if e["event"] == "job.interrupted"]
    return int(stopped["done"])

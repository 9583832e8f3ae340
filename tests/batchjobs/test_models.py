from __future__ import annotations

import io
import itertools

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction

from batchjobs.models import (
    FINISHED,
    TRANSITIONS,
    UNFINISHED,
    InvalidTransition,
    JobRun,
    QuarantinedRow,
    State,
    check_transition,
)

S = State

# The run's life, written out edge by edge (the spec the table in models.py must meet).
VALID = {
    (S.RUNNING, S.SUCCEEDED),
    (S.RUNNING, S.QUARANTINED),
    (S.RUNNING, S.INTERRUPTED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.PAUSED),
    (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.RUNNING),  # a stalled run taken over
    (S.RUNNING, S.ABANDONED),
    (S.INTERRUPTED, S.RUNNING),
    (S.INTERRUPTED, S.PAUSED),
    (S.INTERRUPTED, S.CANCELLED),
    (S.INTERRUPTED, S.ABANDONED),
    (S.FAILED, S.RUNNING),
    (S.FAILED, S.PAUSED),
    (S.FAILED, S.CANCELLED),
    (S.FAILED, S.ABANDONED),
    (S.PAUSED, S.RUNNING),
    (S.PAUSED, S.CANCELLED),
    (S.PAUSED, S.ABANDONED),
    (S.QUARANTINED, S.RUNNING),  # --retry-quarantined
}
ALL_EDGES = list(itertools.product(State, State))


@pytest.mark.parametrize(
    ("current", "new"), sorted(VALID), ids=[f"{a.value}->{b.value}" for a, b in sorted(VALID)]
)
def test_transition__valid_edge_is_allowed(current: State, new: State) -> None:
    check_transition(current, new)


INVALID = sorted(set(ALL_EDGES) - VALID)


@pytest.mark.parametrize(
    ("current", "new"), INVALID, ids=[f"{a.value}->{b.value}" for a, b in INVALID]
)
def test_transition__invalid_edge_is_refused(current: State, new: State) -> None:
    with pytest.raises(InvalidTransition, match=f"cannot go from {current} to {new}"):
        check_transition(current, new)


def test_transition__table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(State)


def test_transition__accepts_plain_strings_as_stored_in_the_row() -> None:
    check_transition("running", "succeeded")
    with pytest.raises(InvalidTransition):
        check_transition("succeeded", "running")


def test_states__unfinished_and_finished_split_every_state() -> None:
    assert set(UNFINISHED) | set(FINISHED) == set(State)
    assert not set(UNFINISHED) & set(FINISHED)


@pytest.mark.parametrize(
    ("done", "total", "percent"),
    [(0, None, None), (0, 0, 100.0), (1, 3, 33.3), (50, 100, 50.0), (120, 100, 100.0)],
)
def test_run__percent(done: int, total: int | None, percent: float | None) -> None:
    assert JobRun(job="j", done=done, total=total).percent == percent


# -- on the database ---------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("second", list(UNFINISHED))
def test_run__constraint_refuses_a_second_unfinished_run_of_a_job(second: State) -> None:
    JobRun.objects.create(job="rotate", state=State.RUNNING)
    with pytest.raises(IntegrityError), transaction.atomic():
        JobRun.objects.create(job="rotate", state=second)
    assert JobRun.objects.filter(job="rotate").count() == 1


@pytest.mark.django_db
def test_run__constraint_allows_finished_runs_and_other_jobs() -> None:
    for state in FINISHED:
        JobRun.objects.create(job="rotate", state=state)
        JobRun.objects.create(job="rotate", state=state)
    JobRun.objects.create(job="rotate", state=State.PAUSED)
    JobRun.objects.create(job="other", state=State.RUNNING)
    assert JobRun.objects.filter(job="rotate").count() == 2 * len(FINISHED) + 1


@pytest.mark.django_db
def test_run__finishing_frees_the_slot_for_a_new_run() -> None:
    """An unfinished run holds the job's one slot until it finishes (here: abandoned)."""
    first = JobRun.objects.create(job="rotate", state=State.FAILED)
    with pytest.raises(IntegrityError), transaction.atomic():
        JobRun.objects.create(job="rotate", state=State.RUNNING)
    JobRun.objects.filter(pk=first.pk).update(state=State.ABANDONED)
    second = JobRun.objects.create(job="rotate", state=State.RUNNING)
    assert list(JobRun.objects.filter(job="rotate").values_list("pk", "state")) == [
        (second.pk, State.RUNNING),
        (first.pk, State.ABANDONED),
    ]


@pytest.mark.django_db
def test_run__newest_first() -> None:
    runs = [JobRun.objects.create(job="rotate", state=State.SUCCEEDED) for _ in range(3)]
    assert list(JobRun.objects.all()) == runs[::-1]
    assert str(runs[0]) == f"rotate #{runs[0].pk} (succeeded)"


@pytest.mark.django_db
def test_quarantined_row__goes_with_its_run() -> None:
    run = JobRun.objects.create(job="rotate", state=State.QUARANTINED)
    row = QuarantinedRow.objects.create(run=run, key=17, error_class="builtins.ValueError")
    assert str(row) == f"row 17 of run #{run.pk}"
    run.delete()
    assert not QuarantinedRow.objects.exists()


@pytest.mark.django_db
def test_models__migrations_match_the_models() -> None:
    """The library's models, and the test app's that its tests run on (the domain's
    migrations are the domain's tests' concern)."""
    out = io.StringIO()
    call_command("makemigrations", "batchjobs", "testapp", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()

"""``RequireJobFinished``, the deploy gate: its verdict and sentence (pure), and the
operation itself against the runs and rows of the real database, read through the
historical models of the migration state (the end-to-end `migrate` is in
tests/jobs/test_backfill_and_gate.py)."""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState
from django.utils import timezone

from batchjobs.gate import RequireJobFinished, RunFacts, refusal, waiting_for
from batchjobs.models import JobRun, State
from tests.testapp.models import Item

JOB = "fill_items"
HEAD = "Migrating testapp needs the job fill_items to have finished: "
RUNJOB = "python manage.py runjob fill_items"


def _refusal(run: RunFacts | None, remaining: int | bool | None = None) -> str | None:
    return refusal(app_label="testapp", job=JOB, run=run, remaining=remaining)


def _run(state: str, **facts: Any) -> RunFacts:
    return RunFacts(run_id=3, state=state, **{"done": 250, "total": 1000, **facts})


# -- the verdict and its sentence (pure) ---------------------------------------------------


def test_refusal__nothing_remaining_passes_whatever_the_runs() -> None:
    assert _refusal(None, remaining=0) is None  # a fresh database, an empty table
    assert _refusal(None, remaining=False) is None
    assert _refusal(_run(State.INTERRUPTED), remaining=0) is None


def test_refusal__without_remaining_the_newest_run_must_have_succeeded() -> None:
    assert _refusal(_run(State.SUCCEEDED, done=1000)) is None
    assert _refusal(None) == f"{HEAD}it has never run. Run it, then migrate again: {RUNJOB}"
    assert _refusal(_run(State.QUARANTINED, done=997, quarantined=3)) == (
        f"{HEAD}its run #3 succeeded with 3 rows quarantined. Fix those rows, retry them, "
        f"then migrate again: {RUNJOB} --retry-quarantined"
    )


def test_refusal__rows_remaining_refuse_even_after_a_successful_run() -> None:
    """The next operation (a NOT NULL, say) would fail on them: say so now, in words."""
    assert _refusal(_run(State.SUCCEEDED, done=1000), remaining=12) == (
        f"{HEAD}12 rows still need it, and its run #3 succeeded before they were written "
        f"(by code that does not do its work?). Run it again, then migrate again: {RUNJOB}"
    )


@pytest.mark.parametrize(
    ("run", "sentence"),
    [
        (None, f"1 row still needs it, and it has never run. Run it, then migrate again: {RUNJOB}"),
        (
            _run(State.INTERRUPTED),
            "1 row still needs it, and its run #3 is interrupted at 250 of 1,000 rows (25.0%). "
            f"Continue it, then migrate again: {RUNJOB}",
        ),
        (
            _run(State.PAUSED),
            "1 row still needs it, and its run #3 is paused at 250 of 1,000 rows (25.0%). "
            f"Resume it, then migrate again: {RUNJOB} --resume",
        ),
        (
            _run(State.FAILED, error_message="IntegrityError (SQLSTATE 23505)"),
            "1 row still needs it, and its run #3 failed at 250 of 1,000 rows (25.0%) "
            "(IntegrityError (SQLSTATE 23505)). Fix the cause, continue it, then migrate "
            f"again: {RUNJOB}",
        ),
        (
            _run(State.RUNNING),
            "1 row still needs it, and its run #3 is running at 250 of 1,000 rows (25.0%). "
            "Wait for it to finish, then migrate again; to watch it: "
            "python manage.py listjobs fill_items --follow",
        ),
        (
            _run(State.RUNNING, stalled=True),
            "1 row still needs it, and its run #3 is stalled at 250 of 1,000 rows (25.0%): "
            f"its process is gone. Continue it, then migrate again: {RUNJOB}",
        ),
        (
            _run(State.CANCELLED),
            "1 row still needs it, and its run #3 was cancelled at 250 of 1,000 rows "
            f"(25.0%). Start a new run, then migrate again: {RUNJOB}",
        ),
        (
            _run(State.ABANDONED, total=None),
            "1 row still needs it, and its run #3 was abandoned at 250 rows. Start a new run, then "
            f"migrate again: {RUNJOB}",
        ),
    ],
    ids=lambda value: value.state if isinstance(value, RunFacts) else None,
)
def test_refusal__names_the_run_its_progress_and_the_command_that_finishes_it(
    run: RunFacts | None, sentence: str
) -> None:
    assert _refusal(run, remaining=1) == HEAD + sentence


def test_refusal__an_unknown_count_and_an_unknown_state_still_make_a_sentence() -> None:
    assert _refusal(_run("sliced"), remaining=True) == (
        f"{HEAD}some rows still need it, and its run #3 is sliced at 250 of 1,000 rows "
        f"(25.0%). Finish it, then migrate again: {RUNJOB}"
    )


def test_require_job_finished__refuses_a_name_that_is_no_job_name() -> None:
    with pytest.raises(ValueError, match="'Fill Items' is not a job name"):
        RequireJobFinished("Fill Items")


def test_require_job_finished__deconstructs_for_the_migration_writer() -> None:
    def remaining(apps: Any) -> bool:
        return False

    operation = RequireJobFinished(JOB, remaining=remaining)
    assert operation.deconstruct() == ("RequireJobFinished", (JOB,), {"remaining": remaining})
    assert operation.describe() == "Require the job fill_items to have finished"
    assert operation.migration_name_fragment == "require_fill_items"
    assert operation.reversible


# -- which unapplied migrations a job may run past ----------------------------------------


def test_waiting_for__the_first_gate_and_everything_migrate_would_apply_after_it() -> None:
    """runjob NAME and listjobs accept these unapplied: migrate applies its plan in order
    and stops at the gate for NAME until NAME has run, so nothing after the gate (of any
    app) can be applied first. What comes before the gate still needs migrate first."""
    before, gated = Migration("0001_other", "blog"), Migration("0002_gate", "shop")
    gated.operations = [RequireJobFinished(JOB)]
    after, elsewhere = Migration("0003_after", "shop"), Migration("0001_more", "zoo")
    plan = [(gated, False), (after, False), (elsewhere, False)]
    waiting = {("shop", "0002_gate"), ("shop", "0003_after"), ("zoo", "0001_more")}
    assert waiting_for(JOB, plan) == waiting
    assert waiting_for(None, plan) == waiting  # listjobs: any job's gate
    assert waiting_for("another_job", plan) == set()
    assert waiting_for(JOB, [(before, False), *plan]) == waiting
    assert waiting_for(JOB, [(before, False)]) == set()


def test_waiting_for__two_gates_in_one_deploy_are_passed_in_migrates_order() -> None:
    """The first gate's job runs first (the second gate waits with the rest); the second
    job is refused until migrate has passed the first gate, and migrate names that job."""
    first, second = Migration("0002_gate", "shop"), Migration("0004_gate", "shop")
    first.operations = [RequireJobFinished(JOB)]
    second.operations = [RequireJobFinished("second_job")]
    plan = [(first, False), (second, False)]
    assert waiting_for(JOB, plan) == {("shop", "0002_gate"), ("shop", "0004_gate")}
    assert waiting_for("second_job", plan) == set()
    assert waiting_for("second_job", [(second, False)]) == {("shop", "0004_gate")}


# -- the operation on the real database ----------------------------------------------------


def _state() -> ProjectState:
    """Every app's historical models, as the latest migrations leave them."""
    return MigrationExecutor(connection).loader.project_state()


def _gate(
    remaining: Callable[[Any], Any] | None = None,
    state: ProjectState | None = None,
    backwards: bool = False,
) -> None:
    operation = RequireJobFinished(JOB, remaining=remaining)
    state = state or _state()
    with connection.schema_editor() as editor:
        apply = operation.database_backwards if backwards else operation.database_forwards
        apply("testapp", editor, state, state)


def _untitled(apps: Any) -> Any:
    # Through the historical model, as a migration would.
    return apps.get_model("testapp", "Item").objects.filter(title="")


@pytest.mark.django_db(transaction=True)
def test_gate__passes_a_fresh_database_with_nothing_to_do(seed_items) -> None:
    seed_items(5)  # every item titled: nothing for the job, which never ran
    _gate(_untitled)


@pytest.mark.django_db(transaction=True)
def test_gate__counts_the_rows_left_and_names_the_newest_run(seed_items) -> None:
    seed_items(5)
    Item.objects.filter(pk__in=list(Item.objects.values_list("pk", flat=True)[:2])).update(title="")
    JobRun.objects.create(job=JOB, state=State.SUCCEEDED, done=10, total=10)
    JobRun.objects.create(job="another_job", state=State.RUNNING, done=1, total=9)
    newest = JobRun.objects.create(job=JOB, state=State.INTERRUPTED, done=3, total=10)
    with pytest.raises(CommandError) as refused:
        _gate(_untitled)
    assert str(refused.value) == (
        f"{HEAD}2 rows still need it, and its run #{newest.pk} is interrupted at 3 of 10 rows "
        f"(30.0%). Continue it, then migrate again: {RUNJOB}"
    )
    assert refused.value.returncode == 1


@pytest.mark.django_db(transaction=True)
def test_gate__without_remaining_passes_only_after_a_successful_run() -> None:
    with pytest.raises(CommandError, match="it has never run"):
        _gate()
    run = JobRun.objects.create(job=JOB, state=State.QUARANTINED, done=9, total=10, quarantined=1)
    with pytest.raises(CommandError, match="succeeded with 1 row quarantined"):
        _gate()
    run.state = State.SUCCEEDED
    run.save()
    _gate()


@pytest.mark.django_db(transaction=True)
def test_gate__a_running_run_whose_process_is_gone_is_stalled() -> None:
    """The same liveness rule as listjobs' (batchjobs.lease): a dead pid on this host."""
    owner = {"owner_token": "t", "owner_host": socket.gethostname(), "heartbeat_at": timezone.now()}
    run = JobRun.objects.create(job=JOB, state=State.RUNNING, owner_pid=os.getppid(), **owner)
    with pytest.raises(CommandError, match=f"its run #{run.pk} is running at 0"):
        _gate()
    run.owner_pid = 2**22 + 1  # above Linux's pid_max: no such process
    run.save()
    with pytest.raises(CommandError, match=f"its run #{run.pk} is stalled at 0 rows: its process"):
        _gate()


@pytest.mark.django_db(transaction=True)
def test_gate__backwards_does_nothing() -> None:
    _gate(backwards=True)  # no run, nothing counted, no error


@pytest.mark.django_db(transaction=True)
def test_gate__remaining_of_another_type_is_a_mistake_named() -> None:
    with pytest.raises(TypeError, match=r"remaining\(\) returned a list; return a queryset"):
        _gate(lambda apps: [])


@pytest.mark.django_db(transaction=True)
def test_gate__a_migration_state_without_batchjobs_names_the_missing_dependency() -> None:
    with pytest.raises(CommandError, match=r"must depend on a batchjobs migration: add"):
        _gate(lambda apps: False, state=ProjectState())


@pytest.mark.django_db(transaction=True)  # SQLite's schema editor refuses an atomic block
def test_sqlmigrate__shows_the_gate_as_an_operation_with_no_sql() -> None:
    """``sqlmigrate`` must not run the gate: it prints the migration, it does not apply it."""
    out = io.StringIO()
    call_command("sqlmigrate", "tickets", "0003", stdout=out)
    text = out.getvalue()
    gate = text.index("-- Require the job backfill_ticket_search_title to have finished")
    assert text.index("-- THIS OPERATION CANNOT BE WRITTEN AS SQL") > gate
    assert text.index("-- Alter field search_title on ticket") > gate  # the gate comes first

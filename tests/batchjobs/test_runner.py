"""The runner in this process, on the real database: each chunk commits on its own, so
these tests use ``django_db(transaction=True)``."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone
from structlog.testing import capture_logs

from batchjobs import Chunk, control
from batchjobs.exceptions import (
    InvalidOption,
    JobDefinitionError,
    JobFailed,
    LeaseLost,
    RunBusy,
    RunNotResumable,
)
from batchjobs.models import JobRun, QuarantinedRow, State
from batchjobs.options import RunOptions
from batchjobs.runner import Outcome, Runner
from batchjobs.stopping import Stopper
from tests.batchjobs.fakes import (
    CloseByToken,
    Contention,
    Crash,
    InstantStopper,
    InstantTime,
    NeverSettles,
    RecordingRotation,
    UnverifiedRotation,
    kill_owner,
    tokens,
)
from tests.testapp.jobs import RotateItemTokens
from tests.testapp.models import Item

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("small_chunks")]

NAME = RecordingRotation.name


@pytest.fixture
def ids(seed_items: Callable[[int], int]) -> list[int]:
    seed_items(50)
    return sorted(Item.objects.values_list("id", flat=True))


def _run(job: Any, **options: Any) -> Outcome:
    return Runner(job, RunOptions(**{"batch_size": 10, **options})).run()


def _crash_on(call: int) -> Callable[[Any, Chunk], None]:
    def before(job: Any, chunk: Chunk) -> None:
        if job.calls == call:
            raise Crash

    return before


def _fail_on(key: int) -> Callable[[Any, Chunk], None]:
    def before(job: Any, chunk: Chunk) -> None:
        if key in chunk.keys:
            raise ValueError(f"cannot rotate item {key}")

    return before


def _changed(before: dict[int, uuid.UUID]) -> set[int]:
    now = tokens()
    return {pk for pk, token in before.items() if now[pk] != token}


# -- a run from start to finish ----------------------------------------------------------


def test_runner__processes_every_row_once_in_key_order_and_succeeds(ids: list[int]) -> None:
    before = tokens()
    job = RecordingRotation()
    outcome = _run(job)
    assert (outcome.state, outcome.exit_code) == (State.SUCCEEDED, 0)
    assert outcome.message == f"Run #{outcome.run_id} of {NAME} succeeded: 50 rows."
    assert job.chunks == [ids[i : i + 10] for i in range(0, 50, 10)]
    assert _changed(before) == set(ids)
    run = JobRun.objects.get(pk=outcome.run_id)
    assert (run.state, run.done, run.total, run.chunks, run.retries) == (
        State.SUCCEEDED,
        50,
        50,
        5,
        0,
    )
    assert (run.cursor, run.high_water_mark) == (ids[-1], ids[-1])
    assert run.owner_token == ""  # the lease is given up
    assert run.started_at <= run.finished_at
    assert run.verification == {"checked": 50, "stale_found": 0, "reswept": 0, "remaining": 0}


def test_runner__empty_table_succeeds_at_once(transactional_db: None) -> None:
    outcome = _run(RecordingRotation())
    run = JobRun.objects.get(pk=outcome.run_id)
    assert (run.state, run.done, run.total, run.high_water_mark) == (State.SUCCEEDED, 0, 0, None)


def test_runner__a_finished_job_runs_again_as_a_new_run(ids: list[int]) -> None:
    first = _run(RecordingRotation())
    before = tokens()
    second = _run(RecordingRotation())
    assert second.run_id != first.run_id
    assert _changed(before) == set(ids)
    assert JobRun.objects.filter(state=State.SUCCEEDED).count() == 2


def test_runner__records_who_why_and_how(ids: list[int]) -> None:
    outcome = _run(RecordingRotation(), reason="INC-123 token leak", sleep=0.0)
    run = JobRun.objects.get(pk=outcome.run_id)
    assert run.reason == "INC-123 token leak"
    assert run.started_by
    assert run.options == {"batch_size": 10, "reason": "INC-123 token leak"}
    (session,) = run.stats["sessions"]
    assert session["reason"] == "INC-123 token leak"
    assert session["pid"] > 0
    if connection.vendor == "postgresql":
        assert run.stats["table_bytes_before"] > 0
        assert run.stats["table_bytes_after"] > 0


def test_runner__batch_size_is_honoured_below_the_adaptive_minimum(
    seed_items: Callable[[int], int], settings: Any
) -> None:
    settings.BATCHJOBS_MIN_CHUNK_SIZE = 100  # the shipped default
    seed_items(35)
    job = RecordingRotation()
    _run(job, batch_size=10)
    assert [len(c) for c in job.chunks] == [10, 10, 10, 5]


# -- crash, failure, resume, restart -----------------------------------------------------


def test_runner__crash_mid_chunk_resumes_and_redoes_only_that_chunk(ids: list[int]) -> None:
    before = tokens()
    crashed = RecordingRotation(before=_crash_on(3))
    with pytest.raises(Crash):
        _run(crashed)
    run = JobRun.objects.get(job=NAME)
    assert (run.state, run.cursor, run.done, run.chunks) == (State.RUNNING, ids[19], 20, 2)
    assert _changed(before) == set(ids[:20])  # the chunk in flight was rolled back

    kill_owner(run.pk)
    resumed = RecordingRotation()
    with capture_logs() as logs:
        outcome = _run(resumed)
    assert outcome.run_id == run.pk
    assert resumed.chunks[0][0] == ids[20]
    assert (crashed.processed + resumed.processed) == dict.fromkeys(ids, 1)
    assert _changed(before) == set(ids)
    run.refresh_from_db()
    assert (run.state, run.done, run.total) == (State.SUCCEEDED, 50, 50)
    assert len(run.stats["sessions"]) == 2
    started = next(e for e in logs if e["event"] == "job.started")
    assert (started["resumed"], started["done"], started["cursor"]) == (True, 20, ids[19])


def test_runner__failure_keeps_the_checkpoint_and_the_next_run_resumes(ids: list[int]) -> None:
    before = tokens()
    failing = RecordingRotation(before=_fail_on(ids[25]))
    with pytest.raises(JobFailed) as caught:
        _run(failing, max_quarantined=0)
    run = JobRun.objects.get(job=NAME)
    assert f"Run #{run.pk} of {NAME} failed: " in str(caught.value)
    assert "checkpoint is kept" in str(caught.value)
    assert run.state == State.FAILED
    assert f"cannot rotate item {ids[25]}" in run.error_message
    assert run.owner_token == ""
    # Rows before the bad one committed (the failing chunk was split to find it).
    assert (run.cursor, run.done) == (ids[24], 25)
    assert _changed(before) == set(ids[:25])

    fixed = RecordingRotation()
    outcome = _run(fixed)
    assert outcome.run_id == run.pk
    assert fixed.chunks[0][0] == ids[25]
    assert (failing.processed + fixed.processed) == dict.fromkeys(ids, 1)
    run.refresh_from_db()
    assert (run.state, run.done, run.error_class, run.error_message) == (
        State.SUCCEEDED,
        50,
        "",
        "",
    )


def test_runner__restart_abandons_the_unfinished_run_and_starts_over(ids: list[int]) -> None:
    with pytest.raises(Crash):
        _run(RecordingRotation(before=_crash_on(3)))
    old = JobRun.objects.get(job=NAME)
    kill_owner(old.pk)
    again = RecordingRotation()
    outcome = _run(again, restart=True)
    assert outcome.run_id != old.pk
    assert again.processed == dict.fromkeys(ids, 1)  # from the very start
    old.refresh_from_db()
    assert old.state == State.ABANDONED
    assert old.finished_at is not None
    assert JobRun.objects.get(pk=outcome.run_id).state == State.SUCCEEDED


def test_runner__paused_run_continues_only_with_resume(ids: list[int]) -> None:
    with pytest.raises(Crash):
        _run(RecordingRotation(before=_crash_on(2)))
    run = JobRun.objects.get(job=NAME)
    kill_owner(run.pk)
    control.request(NAME, "pause")
    with pytest.raises(RunNotResumable) as caught:
        _run(RecordingRotation())
    assert f"runjob {NAME} --resume" in str(caught.value)
    outcome = _run(RecordingRotation(), resume=True)
    assert (outcome.run_id, outcome.state) == (run.pk, State.SUCCEEDED)


def test_runner__resume_without_an_unfinished_run_is_refused(ids: list[int]) -> None:
    with pytest.raises(RunNotResumable, match="has no unfinished run to resume"):
        _run(RecordingRotation(), resume=True)
    assert not JobRun.objects.exists()


def test_runner__run_with_a_live_owner_is_busy(ids: list[int]) -> None:
    import os  # noqa: PLC0415
    import socket  # noqa: PLC0415

    live = JobRun.objects.create(
        job=NAME,
        state=State.RUNNING,
        owner_token="someone-else",
        owner_host=socket.gethostname(),
        owner_pid=os.getppid(),  # a live process that is not this one
        heartbeat_at=timezone.now(),
    )
    before = tokens()
    with pytest.raises(RunBusy) as caught:
        _run(RecordingRotation())
    assert f"already running as run #{live.pk}" in str(caught.value)
    assert f"runjob {NAME} --pause" in str(caught.value)
    assert _changed(before) == set()
    live.refresh_from_db()
    assert live.owner_token == "someone-else"


def test_runner__lease_taken_between_chunks_stops_the_run_without_writing(ids: list[int]):
    before = tokens()

    def steal_after_commit(job: Any, chunk: Chunk) -> None:
        if job.calls == 2:  # another process takes the run over once this chunk commits
            transaction.on_commit(
                lambda: JobRun.objects.filter(job=NAME).update(owner_token="thief")
            )

    job = RecordingRotation(before=steal_after_commit)
    with capture_logs() as logs, pytest.raises(LeaseLost):
        _run(job)
    run = JobRun.objects.get(job=NAME)
    assert (run.owner_token, run.state, run.cursor, run.done) == (
        "thief",
        State.RUNNING,
        ids[19],
        20,
    )
    assert job.calls == 2
    assert _changed(before) == set(ids[:20])
    assert [e["error_class"] for e in logs if e["event"] == "job.failed"] == ["LeaseLost"]


# -- which rows ----------------------------------------------------------------------------


def test_runner__rows_created_after_the_start_are_left_alone(ids: list[int]) -> None:
    created: dict[int, uuid.UUID] = {}

    def add_rows(job: Any, chunk: Chunk) -> None:
        if job.calls == 1:  # the application keeps creating items during the run
            for i in range(5):
                item = Item.objects.create(title=f"new {i}")
                created[item.pk] = item.token

    job = RecordingRotation(before=add_rows)
    outcome = _run(job)
    run = JobRun.objects.get(pk=outcome.run_id)
    assert (run.high_water_mark, run.total, run.done) == (ids[-1], 50, 50)
    assert set(job.processed) == set(ids)
    assert len(created) == 5 and min(created) > ids[-1]
    assert {pk: t for pk, t in tokens().items() if pk in created} == created


def test_runner__only_the_rows_of_the_job_queryset(ids: list[int]) -> None:
    Item.objects.filter(pk__in=ids[::3]).update(title="target")
    before = tokens()
    job = RecordingRotation(queryset=lambda: Item.objects.filter(title="target"))
    outcome = _run(job)
    assert set(job.processed) == set(ids[::3])
    assert _changed(before) == set(ids[::3])
    run = JobRun.objects.get(pk=outcome.run_id)
    assert (run.total, run.done) == (len(ids[::3]), len(ids[::3]))


@pytest.mark.parametrize(
    "queryset",
    [lambda: Item.objects.order_by("id"), lambda: Item.objects.all()[:10]],
    ids=["ordered", "sliced"],
)
def test_runner__ordered_or_sliced_queryset_is_refused_before_a_run(ids, queryset) -> None:
    with pytest.raises(JobDefinitionError):
        _run(RecordingRotation(queryset=queryset))
    assert not JobRun.objects.exists()


def test_runner__walks_a_non_integer_key(ids: list[int], request) -> None:
    order = sorted(Item.objects.values_list("token", flat=True))
    job = CloseByToken()
    outcome = _run(job)
    assert job.chunks == [order[i : i + 10] for i in range(0, 50, 10)]
    assert set(Item.objects.values_list("status", flat=True)) == {"closed"}
    run = JobRun.objects.get(pk=outcome.run_id)
    assert (run.cursor, run.high_water_mark) == (str(order[-1]), str(order[-1]))


def test_runner__resumes_a_non_integer_key_from_its_checkpoint(ids: list[int], request) -> None:
    order = sorted(Item.objects.values_list("token", flat=True))
    with pytest.raises(Crash):
        _run(CloseByToken(before=_crash_on(3)))
    run = JobRun.objects.get(job=CloseByToken.name)
    assert run.cursor == str(order[19])
    kill_owner(run.pk)
    resumed = CloseByToken()
    _run(resumed)
    assert resumed.chunks[0] == order[20:30]


# -- retries -----------------------------------------------------------------------------------


def test_runner__transient_error_twice_is_retried_and_the_run_succeeds(ids: list[int]) -> None:
    contention = Contention()
    contention.hold(ids[0])

    def collide_twice(job: Any, chunk: Chunk) -> None:
        if job.calls <= 2:
            try:
                contention.collide(chunk.first)
            finally:
                if job.calls == 2:
                    contention.release()

    clock = InstantTime()
    job = RecordingRotation(before=collide_twice)
    try:
        with capture_logs() as logs:
            outcome = Runner(
                job, RunOptions(batch_size=10), stopper=InstantStopper(clock), clock=clock
            ).run()
    finally:
        contention.release()
    assert outcome.state == State.SUCCEEDED
    assert job.processed == dict.fromkeys(ids, 1)
    assert JobRun.objects.get(pk=outcome.run_id).retries == 2
    retries = [e for e in logs if e["event"] == "job.retry"]
    kind = "lock_timeout" if connection.vendor == "postgresql" else "database_busy"
    assert [(e["attempt"], e["error_kind"]) for e in retries] == [(1, kind), (2, kind)]
    assert len(clock.slept) >= 2 and all(s > 0 for s in clock.slept)


def test_runner__transient_error_that_persists_fails_the_run(ids: list[int], settings) -> None:
    settings.BATCHJOBS_MAX_ATTEMPTS = 3
    contention = Contention()
    contention.hold(ids[0])
    clock = InstantTime()
    job = RecordingRotation(before=lambda job, chunk: contention.collide(chunk.first))
    try:
        with pytest.raises(JobFailed):
            Runner(job, RunOptions(batch_size=10), stopper=InstantStopper(clock), clock=clock).run()
    finally:
        contention.release()
    assert job.calls == 3
    run = JobRun.objects.get(job=NAME)
    assert (run.state, run.cursor, run.done) == (State.FAILED, None, 0)
    expected = "SQLSTATE 55P03" if connection.vendor == "postgresql" else "database is locked"
    assert expected in run.error_message


# -- quarantine ------------------------------------------------------------------------------


def test_runner__row_failing_alone_is_quarantined_and_the_rest_done(ids: list[int]) -> None:
    bad = ids[13]
    before = tokens()
    outcome = _run(UnverifiedRotation(before=_fail_on(bad)))
    assert (outcome.state, outcome.exit_code) == (State.QUARANTINED, 5)
    assert f"keys [{bad}]" in outcome.message
    assert f"runjob {UnverifiedRotation.name} --retry-quarantined" in outcome.message
    assert _changed(before) == set(ids) - {bad}
    (row,) = QuarantinedRow.objects.all()
    assert (row.key, row.error_class, row.error_message) == (
        bad,
        "builtins.ValueError",
        f"cannot rotate item {bad}",
    )
    run = JobRun.objects.get(pk=outcome.run_id)
    # The row set aside is not done: it still holds its old value.
    assert (run.state, run.quarantined, run.done) == (State.QUARANTINED, 1, 49)

    retried = _run(UnverifiedRotation(), retry_quarantined=True)
    assert (retried.run_id, retried.state) == (run.pk, State.SUCCEEDED)
    assert _changed(before) == set(ids)
    row.refresh_from_db()
    assert row.resolved_at is not None
    run.refresh_from_db()
    assert (run.quarantined, run.done) == (0, 50)


def test_runner__quarantined_row_does_not_fail_the_verification(ids: list[int]) -> None:
    bad = ids[13]
    outcome = _run(RecordingRotation(before=_fail_on(bad)))
    assert (outcome.state, outcome.exit_code) == (State.QUARANTINED, 5)
    run = JobRun.objects.get(pk=outcome.run_id)
    assert run.verification["remaining"] == 0


def test_runner__too_many_quarantined_rows_fail_the_run(ids: list[int]) -> None:
    def always(job: Any, chunk: Chunk) -> None:
        raise ValueError("the job's code is broken")

    with pytest.raises(JobFailed, match="the job's code is broken"):
        _run(RecordingRotation(before=always), max_quarantined=2)
    run = JobRun.objects.get(job=NAME)
    assert (run.state, run.quarantined) == (State.FAILED, 2)
    assert QuarantinedRow.objects.count() == 2


def test_runner__a_missing_column_fails_the_run_instead_of_quarantining_rows(
    ids: list[int],
) -> None:
    """No single row causes a missing column: bisecting would set good rows aside (SQLite
    says so in words, PostgreSQL with SQLSTATE 42703)."""

    def misspelled(job: Any, chunk: Chunk) -> None:
        with connection.cursor() as c:
            c.execute("UPDATE testapp_item SET no_such_column = 1 WHERE id = %s", [chunk.first])

    with pytest.raises(JobFailed, match=r"no_such_column|42703"):
        _run(RecordingRotation(before=misspelled))
    run = JobRun.objects.get(job=NAME)
    assert (run.state, run.quarantined, run.done) == (State.FAILED, 0, 0)
    assert not QuarantinedRow.objects.exists()


def test_runner__retry_quarantined_without_such_a_run_is_refused(ids: list[int]) -> None:
    with pytest.raises(RunNotResumable, match="has no run with quarantined rows"):
        _run(RecordingRotation(), retry_quarantined=True)


# -- stopping, pausing, cancelling, tuning -----------------------------------------------------


def test_runner__stop_signal_interrupts_after_the_chunk_in_flight(ids: list[int]) -> None:
    stopper = Stopper()

    def signal_on_second(job: Any, chunk: Chunk) -> None:
        if job.calls == 2:
            stopper.request(signal.SIGTERM)

    first = RecordingRotation(before=signal_on_second)
    outcome = Runner(first, RunOptions(batch_size=10), stopper=stopper).run()
    assert (outcome.state, outcome.exit_code) == (State.INTERRUPTED, 143)
    assert "interrupted by SIGTERM after 20 of 50 rows" in outcome.message
    assert f"Resume with: python manage.py runjob {NAME}" in outcome.message
    run = JobRun.objects.get(pk=outcome.run_id)
    assert (run.state, run.done, run.owner_token) == (State.INTERRUPTED, 20, "")

    second = RecordingRotation()
    assert _run(second).run_id == run.pk
    assert (first.processed + second.processed) == dict.fromkeys(ids, 1)


def test_runner__pause_request_parks_the_run_at_a_chunk_boundary(ids: list[int]) -> None:
    def pause_on_second(job: Any, chunk: Chunk) -> None:
        if job.calls == 2:
            control.request(NAME, "pause")

    outcome = _run(RecordingRotation(before=pause_on_second))
    assert (outcome.state, outcome.exit_code) == (State.PAUSED, 3)
    assert f"continue with `runjob {NAME} --resume`" in outcome.message
    run = JobRun.objects.get(pk=outcome.run_id)
    assert (run.state, run.owner_token, run.requested_action) == (State.PAUSED, "", "")
    assert run.done in {20, 30}  # the request is seen at the next chunk's start

    assert _run(RecordingRotation(), resume=True).state == State.SUCCEEDED


def test_runner__cancel_request_ends_the_run_for_good(ids: list[int]) -> None:
    def cancel_on_second(job: Any, chunk: Chunk) -> None:
        if job.calls == 2:
            control.request(NAME, "cancel")

    outcome = _run(RecordingRotation(before=cancel_on_second))
    assert (outcome.state, outcome.exit_code) == (State.CANCELLED, 4)
    cancelled = JobRun.objects.get(pk=outcome.run_id)
    assert cancelled.state == State.CANCELLED

    fresh = RecordingRotation()
    again = _run(fresh)
    assert again.run_id != cancelled.pk
    assert fresh.processed == dict.fromkeys(ids, 1)


def test_runner__cancelled_run_records_when_it_finished(ids: list[int]) -> None:
    def cancel_on_first(job: Any, chunk: Chunk) -> None:
        if job.calls == 1:
            control.request(NAME, "cancel")

    outcome = _run(RecordingRotation(before=cancel_on_first))
    assert JobRun.objects.get(pk=outcome.run_id).finished_at is not None


def test_runner__live_tuning_changes_the_chunk_size(ids: list[int]) -> None:
    def tune_on_first(job: Any, chunk: Chunk) -> None:
        if job.calls == 1:
            control.tune(NAME, batch_size=4)

    job = RecordingRotation(before=tune_on_first)
    with capture_logs() as logs:
        _run(job)
    sizes = [len(c) for c in job.chunks]
    assert sizes[:2] == [10, 10]  # read at the next chunk's lock, applied after it
    assert set(sizes[2:-1]) == {4}
    assert job.processed == dict.fromkeys(ids, 1)
    tuned = [e for e in logs if e["event"] == "job.tuned"]
    assert [(e["chunk_size"], e["tuning"]) for e in tuned] == [(4, {"batch_size": 4})]


def test_runner__max_runtime_interrupts_between_chunks(ids: list[int]) -> None:
    clock = InstantTime()

    def ten_seconds_a_chunk(job: Any, chunk: Chunk) -> None:
        clock.now += 10

    outcome = Runner(
        RecordingRotation(before=ten_seconds_a_chunk),
        RunOptions(batch_size=10, max_runtime=25),
        stopper=InstantStopper(clock),
        clock=clock,
    ).run()
    assert outcome.state == State.INTERRUPTED
    assert "--max-runtime 25s reached after 30 of 50 rows" in outcome.message
    assert JobRun.objects.get(pk=outcome.run_id).done == 30


def test_runner__sleep_between_chunks(ids: list[int]) -> None:
    clock = InstantTime()
    Runner(
        RecordingRotation(),
        RunOptions(batch_size=10, sleep=0.25),
        stopper=InstantStopper(clock),
        clock=clock,
    ).run()
    assert clock.slept.count(0.25) >= 5


# -- the database makes the values --------------------------------------------------------------


@pytest.mark.postgres
def test_runner__sql_side_rotates_in_the_database(ids: list[int]) -> None:
    before = tokens()
    outcome = _run(RotateItemTokens(), sql_side=True)
    assert outcome.state == State.SUCCEEDED
    after = tokens()
    assert _changed(before) == set(ids)
    assert all(token.version == 4 for token in after.values())
    assert len(set(after.values())) == len(after)
    run = JobRun.objects.get(pk=outcome.run_id)
    assert run.options["sql_side"] is True
    assert run.verification["remaining"] == 0


def test_runner__sql_side_is_refused_for_a_job_without_expressions(ids: list[int]) -> None:
    with pytest.raises(InvalidOption, match="has no SQL-side values on"):
        _run(CloseByToken(), sql_side=True)
    assert not JobRun.objects.exists()


# -- verification ---------------------------------------------------------------------------------


def test_runner__verification_resweeps_a_row_written_back_with_an_old_token(ids: list[int]):
    leaked = uuid.uuid4()
    old = datetime(2000, 1, 1, tzinfo=UTC)

    def write_back(job: Any, chunk: Chunk) -> None:
        if job.calls == 3:  # an instance loaded before the rotation bypasses the model
            Item.objects.filter(pk=ids[0]).update(token=leaked, token_issued_at=old)

    with capture_logs() as logs:
        outcome = _run(RecordingRotation(before=write_back))
    assert outcome.state == State.SUCCEEDED
    run = JobRun.objects.get(pk=outcome.run_id)
    assert run.verification == {"checked": 50, "stale_found": 1, "reswept": 1, "remaining": 0}
    item = Item.objects.get(pk=ids[0])
    assert item.token != leaked
    assert item.token_issued_at >= run.started_at
    (verified,) = [e for e in logs if e["event"] == "job.verified"]
    assert verified["stale_found"] == 1


def test_runner__verification_that_cannot_settle_fails_the_run(ids: list[int]) -> None:
    Item.objects.filter(pk=ids[7]).update(title="stuck for good")
    with pytest.raises(JobFailed, match="verification found 1 rows still pending"):
        _run(NeverSettles())
    run = JobRun.objects.get(job=NeverSettles.name)
    assert (run.state, run.done) == (State.FAILED, 50)


def test_runner__an_unusable_key_refuses_before_taking_a_run_over(
    ids: list[int], registry_snapshot: Any
) -> None:
    """A job whose key went wrong between sessions must not claim the interrupted run and
    then leave it owned by a process that has gone."""

    class Misspelled(RecordingRotation):
        name = "fake_misspelled_key"
        description = "The recording rotation, its key misspelled since its last session."
        key = "nope"

    run = JobRun.objects.create(job=Misspelled.name, state=State.INTERRUPTED, done=10, total=50)

    with pytest.raises(JobDefinitionError, match="has no field named 'nope'"):
        Runner(Misspelled(), RunOptions())
    run.refresh_from_db()
    assert (run.state, run.owner_token, run.done) == (State.INTERRUPTED, "", 10)


def test_runner__a_health_check_that_cannot_be_loaded_refuses_before_claiming(
    ids: list[int], settings: Any
) -> None:
    run = JobRun.objects.create(job=NAME, state=State.INTERRUPTED, done=10, total=50)
    settings.BATCHJOBS_HEALTH_CHECKS = ["tests.batchjobs.no_such_module.Check"]
    with pytest.raises(ImportError):
        Runner(RecordingRotation(), RunOptions())
    run.refresh_from_db()
    assert (run.state, run.owner_token) == (State.INTERRUPTED, "")

"""Lifecycle hooks: each is called once, after the run's state is recorded, with the run as
it then is (and the reason of an interruption); a hook that raises is reported as
``job.hook_failed`` and changes neither the run's state, nor its checkpoint, nor the exit
code."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import InterfaceError, transaction
from structlog.testing import capture_logs

from batchjobs import Chunk, Interruption, RunInfo, control
from batchjobs.exceptions import DatabaseUnavailable, JobFailed, LeaseLost
from batchjobs.models import JobRun, State
from batchjobs.options import RunOptions
from batchjobs.runner import Runner
from batchjobs.testing import JobRunner
from tests.batchjobs.fakes import InstantStopper, InstantTime, RecordingRotation
from tests.conftest import Cli, wait_for
from tests.testapp.models import Item

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("small_chunks")]

OPTIONS = RunOptions(batch_size=10)


class HookedRotation(RecordingRotation):
    """The recording rotation, noting every hook call; ``raising`` names hooks that raise."""

    name = "fake_hooked_rotation"

    def __init__(self, *, raising: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hooks: list[tuple[str, RunInfo, Any]] = []
        self.raising = raising

    def _note(self, hook: str, run: RunInfo, extra: Any = None) -> None:
        self.hooks.append((hook, run, extra))
        if hook in self.raising:
            raise RuntimeError(f"{hook} is broken")

    def on_start(self, run: RunInfo) -> None:
        self._note("on_start", run)

    def on_complete(self, run: RunInfo) -> None:
        self._note("on_complete", run)

    def on_interrupt(self, run: RunInfo, reason: Interruption) -> None:
        self._note("on_interrupt", run, reason)

    def on_error(self, run: RunInfo, error: BaseException) -> None:
        self._note("on_error", run, error)


def _seen(job: HookedRotation) -> list[tuple[str, str, int, int | None, Any]]:
    return [(hook, run.state, run.done, run.total, extra) for hook, run, extra in job.hooks]


def _on_call(n: int, act: Callable[[], None]) -> Callable[[Any, Chunk], None]:
    def before(job: Any, chunk: Chunk) -> None:
        if job.calls == n:
            act()

    return before


@pytest.fixture
def items(seed_items: Callable[[int], int]) -> int:
    return seed_items(50)


def test_hooks__a_run_to_the_end_calls_on_start_then_on_complete(
    items: int, job_runner: JobRunner
) -> None:
    job = HookedRotation()
    done = job_runner.run(job, options=OPTIONS)
    assert _seen(job) == [
        ("on_start", State.RUNNING, 0, 50, None),
        ("on_complete", State.SUCCEEDED, 50, 50, None),
    ]
    start, complete = job.hooks[0][1], job.hooks[1][1]
    assert (start.run_id, start.job, start.resumed) == (done.run.pk, job.name, False)
    assert start.started_at == done.run.started_at
    assert complete.high_water_mark == max(Item.objects.values_list("pk", flat=True))


def test_hooks__a_stop_signal_calls_on_interrupt_and_the_resumed_run_starts_resumed(
    items: int, job_runner: JobRunner
) -> None:
    first = HookedRotation()
    stopped = job_runner.run(first, options=OPTIONS, stop_after_chunks=2)
    assert stopped.outcome.exit_code == 143
    assert _seen(first) == [
        ("on_start", State.RUNNING, 0, 50, None),
        ("on_interrupt", State.INTERRUPTED, 20, 50, Interruption.SIGNAL),
    ]
    second = HookedRotation()
    job_runner.run(second, options=OPTIONS)
    assert _seen(second) == [
        ("on_start", State.RUNNING, 20, 50, None),
        ("on_complete", State.SUCCEEDED, 50, 50, None),
    ]
    assert second.hooks[0][1].resumed is True


@pytest.mark.parametrize(
    ("action", "state", "reason"),
    [("pause", State.PAUSED, Interruption.PAUSE), ("cancel", State.CANCELLED, Interruption.CANCEL)],
)
def test_hooks__pause_and_cancel_call_on_interrupt_with_their_reason(
    items: int, action: str, state: State, reason: Interruption
) -> None:
    job = HookedRotation(before=_on_call(2, lambda: control.request(job.name, action)))
    outcome = Runner(job, OPTIONS).run()
    assert outcome.state == state
    hook, run, extra = job.hooks[-1]
    assert (hook, run.state, extra) == ("on_interrupt", state, reason)
    assert run.done == JobRun.objects.get(pk=outcome.run_id).done


def test_hooks__max_runtime_calls_on_interrupt_with_max_runtime(items: int) -> None:
    clock = InstantTime()

    def ten_seconds() -> None:
        clock.now += 10

    job = HookedRotation(before=lambda job, chunk: ten_seconds())
    Runner(
        job,
        RunOptions(batch_size=10, max_runtime=25),
        stopper=InstantStopper(clock),
        clock=clock,
    ).run()
    assert _seen(job)[-1] == ("on_interrupt", State.INTERRUPTED, 30, 50, Interruption.MAX_RUNTIME)


def test_hooks__a_database_gone_for_good_calls_on_interrupt_with_database_lost(
    items: int, settings: Any
) -> None:
    """The driver's error for a closed connection, from every attempt of the first chunk (a
    server going away for good is tests/faults/test_connection.py's, in real processes)."""
    settings.BATCHJOBS_MAX_ATTEMPTS = 2
    clock = InstantTime()

    def gone() -> None:
        raise InterfaceError("connection already closed")

    job = HookedRotation(before=lambda job, chunk: gone())
    with pytest.raises(DatabaseUnavailable):
        Runner(job, OPTIONS, stopper=InstantStopper(clock), clock=clock).run()
    assert _seen(job) == [
        ("on_start", State.RUNNING, 0, 50, None),
        ("on_interrupt", State.INTERRUPTED, 0, 50, Interruption.DATABASE_LOST),
    ]


def test_hooks__a_lost_lease_calls_on_interrupt_with_the_state_the_run_row_shows(
    items: int,
) -> None:
    def steal() -> None:
        transaction.on_commit(lambda: JobRun.objects.filter(job=job.name).update(owner_token="x"))

    job = HookedRotation(before=_on_call(2, steal))
    with pytest.raises(LeaseLost):
        Runner(job, OPTIONS).run()
    assert _seen(job)[-1] == ("on_interrupt", State.RUNNING, 20, 50, Interruption.LEASE_LOST)


def test_hooks__a_failed_run_calls_on_error_with_the_error(
    items: int, registry_snapshot: dict[str, Any]
) -> None:
    Item.objects.filter(pk__in=Item.objects.values("pk")[:3]).update(title="stuck")

    class Unsettled(HookedRotation):
        name = "fake_hooked_unsettled"

        def pending(self, run: RunInfo) -> Any:
            return Item.objects.filter(pk__lte=run.high_water_mark, title="stuck")

    job = Unsettled()
    with pytest.raises(JobFailed):
        Runner(job, OPTIONS).run()
    hook, run, error = job.hooks[-1]
    assert (hook, run.state, run.done) == ("on_error", State.FAILED, 50)
    assert isinstance(error, JobFailed) and "still pending" in str(error)


def test_hooks__raising_hooks_are_reported_and_the_run_is_untouched(items: int) -> None:
    job = HookedRotation(raising=("on_start", "on_complete"))
    with capture_logs() as logs:
        outcome = Runner(job, OPTIONS).run()
    assert (outcome.state, outcome.exit_code) == (State.SUCCEEDED, 0)
    run = JobRun.objects.get(pk=outcome.run_id)
    assert (run.state, run.done, run.error_class) == (State.SUCCEEDED, 50, "")
    assert sorted(job.processed) == sorted(Item.objects.values_list("pk", flat=True))
    failed = [e for e in logs if e["event"] == "job.hook_failed"]
    assert [(e["hook"], e["error_class"], e["error"]) for e in failed] == [
        ("on_start", "builtins.RuntimeError", "on_start is broken"),
        ("on_complete", "builtins.RuntimeError", "on_complete is broken"),
    ]
    assert all(e["job"] == job.name and e["run_id"] == run.pk for e in failed)
    assert logs[-1]["event"] == "job.hook_failed"  # after job.finished: the end was recorded


def test_hooks__a_raising_on_interrupt_keeps_the_checkpoint_and_exit_code(
    items: int, job_runner: JobRunner
) -> None:
    stopped = job_runner.run(
        HookedRotation(raising=("on_interrupt",)), options=OPTIONS, stop_after_chunks=2
    )
    assert (stopped.outcome.exit_code, stopped.run.state) == (143, State.INTERRUPTED)
    assert stopped.run.done == 20 and stopped.run.owner_token == ""
    assert stopped.event_names[-2:] == ["job.interrupted", "job.hook_failed"]
    job_runner.run(HookedRotation(), options=OPTIONS)
    job_runner.assert_each_row_once(Item.objects.all())


def test_hooks__sigterm_to_a_real_runjob_calls_on_interrupt_with_signal(
    seed: Callable[[int], int], cli: Cli, tmp_path: Path
) -> None:
    seed(600)
    notes = tmp_path / "hooks.txt"
    env = {"SCENARIO_HOOKS_FILE": str(notes), "SCENARIO_CHUNK_SLEEP": "0.1"}
    args = ("runjob", "scenario_hooked_rotation", "--batch-size", "100", "--log-format", "json")
    live = cli.spawn(*args, env=env)
    try:
        wait_for(lambda: notes.exists() and notes.read_text().startswith("on_start"))
        live.send_signal(signal.SIGTERM)
        _, stderr = live.communicate(timeout=60)
    finally:
        if live.poll() is None:
            live.kill()
            live.communicate()
    assert live.returncode == 143, stderr
    lines = notes.read_text().splitlines()
    assert lines[0] == "on_start running 0 -"
    hook, state, done, reason = lines[1].split()
    assert (hook, state, reason) == ("on_interrupt", "interrupted", "signal")
    assert done == str(JobRun.objects.get(job="scenario_hooked_rotation").done)
    assert len(lines) == 2

"""The job authors' testing kit on the test app's job: a run to the end; a run stopped after
some chunks or at a key and resumed; rows counted only when their chunk commits; and the
exactly-once assertion failing when a row is skipped or processed twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from batchjobs import Chunk, Param
from batchjobs.models import State
from batchjobs.options import RunOptions
from batchjobs.rehearsal import rehearse
from batchjobs.testing import (
    JobRunner,
    Recorder,
    assert_each_row_once,
    assert_effects_delivered,
    run_job,
)
from tests.scenario_jobs.effects import NotifyingItems
from tests.support.receiver import Receiver
from tests.testapp.jobs import RotateItemTokens
from tests.testapp.models import Item

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("small_chunks")]

OPTIONS = RunOptions(batch_size=10)


@pytest.fixture
def ids(seed_items: Callable[[int], int]) -> list[int]:
    seed_items(50)
    return sorted(Item.objects.values_list("id", flat=True))


def test_kit__runs_a_job_to_the_end(ids: list[int], job_runner: JobRunner) -> None:
    done = job_runner.run(RotateItemTokens, options=OPTIONS)
    assert (done.outcome.exit_code, done.run.state, done.run.done) == (0, State.SUCCEEDED, 50)
    assert done.event_names == ["job.started", "job.verified", "job.finished"]
    assert job_runner.recorder.chunks == 5
    job_runner.assert_each_row_once(Item.objects.all())


def test_kit__stops_after_n_chunks_as_sigterm_would_and_the_next_run_resumes(
    ids: list[int], job_runner: JobRunner
) -> None:
    stopped = job_runner.run(RotateItemTokens, options=OPTIONS, stop_after_chunks=2)
    assert (stopped.outcome.exit_code, stopped.run.state) == (143, State.INTERRUPTED)
    assert (stopped.run.done, stopped.run.cursor) == (20, ids[19])
    assert "interrupted by SIGTERM after 20 of 50 rows" in stopped.outcome.message
    assert stopped.event_names[-1] == "job.interrupted"
    assert set(job_runner.recorder.counts) == set(ids[:20])

    resumed = job_runner.run(RotateItemTokens, options=OPTIONS)
    assert resumed.run.pk == stopped.run.pk
    assert (resumed.run.state, resumed.run.done) == (State.SUCCEEDED, 50)
    job_runner.assert_each_row_once(Item.objects.all())


def test_kit__stops_at_a_key_after_the_chunk_that_reaches_it(
    ids: list[int], job_runner: JobRunner
) -> None:
    stopped = job_runner.run(RotateItemTokens, options=OPTIONS, stop_at_key=ids[24])
    assert stopped.run.state == State.INTERRUPTED
    assert (stopped.run.done, stopped.run.cursor) == (30, ids[29])  # the chunk ids[20:30]
    job_runner.run(RotateItemTokens, options=OPTIONS)
    job_runner.assert_each_row_once(Item.objects.all())


class FlakyAfterWriting(RotateItemTokens):
    """Rotates, and the first time it meets ``flaky`` raises after writing: the chunk's
    writes are rolled back and the runner bisects it, so ``process`` writes those rows
    twice and the database commits them once."""

    name = "fake_flaky_after_writing"

    flaky = Param(int, required=True, help="The key whose chunk fails once, after writing")

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self.written: Counter[int] = Counter()

    def process(self, chunk: Chunk) -> int:
        changed = super().process(chunk)
        self.written.update(chunk.keys)
        if self.flaky in chunk.keys and self.written[self.flaky] == 1:
            raise ValueError("a flaky row")
        return changed


def test_kit__a_chunk_rolled_back_and_done_again_counts_once(ids: list[int]) -> None:
    job = FlakyAfterWriting(flaky=ids[15])
    recorder = Recorder()
    done = run_job(job, options=OPTIONS, recorder=recorder)
    assert done.run.state == State.SUCCEEDED
    assert job.written[ids[15]] == 2 and job.written[ids[0]] == 1
    assert_each_row_once(recorder, ids)


def test_kit__a_rehearsal_rolled_back_counts_nothing(ids: list[int]) -> None:
    job, recorder = RotateItemTokens(), Recorder()
    with recorder.watching(job):
        rehearse(job, sample=25)
    assert recorder.counts == Counter()
    assert recorder.chunks == 0


def test_kit__the_assertion_fails_for_rows_never_processed(ids: list[int]) -> None:
    recorder = Recorder()
    run_job(RotateItemTokens, options=OPTIONS, stop_after_chunks=3, recorder=recorder)
    with pytest.raises(AssertionError, match=r"of 50: 20 never processed \(keys \[") as caught:
        assert_each_row_once(recorder, Item.objects.all())
    assert str(ids[30]) in str(caught.value)


def test_kit__the_assertion_fails_for_rows_processed_twice(ids: list[int]) -> None:
    """A second run after a finished one starts afresh: every row is processed again."""
    recorder = Recorder()
    run_job(RotateItemTokens, options=OPTIONS, recorder=recorder)
    run_job(RotateItemTokens, options=OPTIONS, recorder=recorder)
    with pytest.raises(AssertionError, match=r"50 processed more than once \(\{key: times\} "):
        assert_each_row_once(recorder, Item.objects.all())


def test_kit__the_assertion_fails_for_rows_processed_but_not_expected(ids: list[int]) -> None:
    recorder = Recorder()
    run_job(RotateItemTokens, options=OPTIONS, recorder=recorder)
    with pytest.raises(AssertionError, match=r"10 processed but not expected"):
        assert_each_row_once(recorder, Item.objects.filter(pk__in=ids[10:]))


class Limited(RotateItemTokens):
    """A job with a parameter, constructed as ``Limited(**params)``."""

    name = "fake_limited_rotation"

    def __init__(self, *, below: int | None = None) -> None:
        self.below = below

    def get_queryset(self) -> Any:
        rows = super().get_queryset()
        return rows if self.below is None else rows.filter(pk__lt=self.below)


def test_kit__params_construct_the_job_class(ids: list[int], job_runner: JobRunner) -> None:
    done = job_runner.run(Limited, {"below": ids[20]}, options=OPTIONS)
    assert done.run.total == 20
    job_runner.assert_each_row_once(ids[:20])
    with pytest.raises(TypeError, match="params are for a job class"):
        run_job(Limited(), {"below": 1})


# -- outside effects: delivered at least once ---------------------------------------------


def test_kit__effects_stopped_and_resumed_are_each_delivered(
    ids: list[int], job_runner: JobRunner, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCENARIO_RECEIVER_URL", receiver.url)
    stopped = job_runner.run(NotifyingItems, options=OPTIONS, stop_after_chunks=2)
    assert stopped.run.state == State.INTERRUPTED
    # Half way (the second chunk's effects are owed: the stop came before their delivery),
    # the assertion fails.
    with pytest.raises(AssertionError, match=r"of 50: (30|40) never delivered"):
        job_runner.assert_effects_delivered(ids)

    job_runner.run(NotifyingItems, options=OPTIONS)
    job_runner.assert_each_row_once(ids)
    job_runner.assert_effects_delivered(ids)
    assert receiver.delivered() == 50  # in process, nothing crashed: each once


def test_kit__the_effects_assertion_fails_for_keys_not_expected_or_renamed() -> None:
    recorder = Recorder()
    recorder.deliveries.update({"1": 1, "2": 2})
    recorder.delivered_as.update({"1": {"7:1"}, "2": {"7:2", "8:2"}})
    with pytest.raises(AssertionError) as caught:
        assert_effects_delivered(recorder, [2])
    assert "1 delivered under several idempotency keys ({key: keys} {'2': ['7:2', '8:2']})" in str(
        caught.value
    )
    assert "1 delivered but not expected (keys ['1'])" in str(caught.value)

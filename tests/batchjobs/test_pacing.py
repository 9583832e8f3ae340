"""``Pacer.wait`` tells its ``on_wait`` how long each wait lasted (the ETA leaves it out)."""

from __future__ import annotations

from typing import Any

import structlog

from batchjobs.conf import Settings
from batchjobs.pacing import Pacer
from batchjobs.progress import ProgressEstimator
from batchjobs.sizing import ChunkSizer
from batchjobs.stopping import Stopper


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _SleeplessStopper(Stopper):
    def __init__(self, clock: _Clock) -> None:
        super().__init__()
        self.clock = clock

    def sleep(self, seconds: float) -> None:
        self.clock.now += seconds


class _Store:
    def controls(self) -> None:
        return None

    def heartbeat(self) -> None:
        pass


def _pacer(clock: _Clock, on_wait: Any, max_runtime: float | None = None) -> Pacer:
    return Pacer(
        store=_Store(),  # type: ignore[arg-type]
        connection=None,  # type: ignore[arg-type]
        stopper=_SleeplessStopper(clock),
        sizer=ChunkSizer(size=100, target_seconds=1.0),
        settings=Settings(),
        health_checks=[],
        sleep_seconds=0.0,
        max_runtime=max_runtime,
        clock=clock,
        log=structlog.get_logger("test"),
        on_wait=on_wait,
    )


def test_pacer__reports_each_wait_as_it_lasted() -> None:
    clock, waits = _Clock(), []
    pacer = _pacer(clock, waits.append, max_runtime=10.0)
    pacer.wait(2.5)
    pacer.wait(30.0)  # cut short at --max-runtime
    assert waits == [2.5, 7.5]


def test_pacer__a_throttled_minute_does_not_lower_the_estimated_rate() -> None:
    clock = _Clock()
    estimator = ProgressEstimator(total=10_000, started_at=0.0)
    pacer = _pacer(clock, estimator.waited)
    for _ in range(5):
        clock.now += 1.0
        estimator.advance(100, now=clock.now)
    pacer.wait(60.0)
    clock.now += 1.0
    estimator.advance(100, now=clock.now)
    snap = estimator.snapshot(now=clock.now)
    assert snap.rate == 100.0
    assert snap.elapsed_seconds == 66.0

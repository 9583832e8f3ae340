from __future__ import annotations

import pytest

from batchjobs.progress import ProgressEstimator, format_duration


def test_progress__no_rate_or_eta_before_any_work() -> None:
    snap = ProgressEstimator(total=100, started_at=10.0).snapshot(now=12.0)
    assert (snap.done, snap.rate, snap.eta_seconds, snap.percent) == (0, None, None, 0.0)
    assert snap.elapsed_seconds == 2.0


def test_progress__rate_percent_and_eta_from_rows_done() -> None:
    progress = ProgressEstimator(total=1_000, started_at=0.0)
    for second in (1.0, 2.0, 3.0):
        progress.advance(100, now=second)
    snap = progress.snapshot(now=3.0)
    assert snap.rate == 100.0
    assert snap.percent == 30.0
    assert snap.eta_seconds == 7.0  # 700 rows left at 100 rows/s


def test_progress__resumed_run_counts_only_this_process_work_in_the_rate() -> None:
    progress = ProgressEstimator(total=1_000, done=900, started_at=0.0)
    for rows, second in ((10, 1.0), (20, 3.0), (20, 5.0)):
        progress.advance(rows, now=second)
    snap = progress.snapshot(now=5.0)
    assert snap.done == 950
    assert snap.rate == 10.0  # 50 rows in 5 s, not 950
    assert snap.eta_seconds == 5.0
    assert snap.percent == 95.0


def test_progress__rate_follows_a_slowdown_within_the_window() -> None:
    progress = ProgressEstimator(total=10_000, started_at=0.0, window_seconds=10.0)
    for second in range(1, 31):  # 100 rows/s for 30 s
        progress.advance(100, now=float(second))
    for second in range(31, 61):  # then 10 rows/s for 30 s
        progress.advance(10, now=float(second))
    rate = progress.snapshot(now=60.0).rate
    assert rate is not None
    assert rate < 15  # a whole-run average would still say 55 rows/s


def test_progress__percent_is_capped_and_eta_never_negative_when_done_passes_total() -> None:
    progress = ProgressEstimator(total=100, started_at=0.0)
    progress.advance(120, now=1.0)  # rows were added after the estimate
    snap = progress.snapshot(now=1.0)
    assert snap.percent == 100.0
    assert snap.eta_seconds == 0.0


def test_progress__empty_table_is_complete_at_once() -> None:
    snap = ProgressEstimator(total=0, started_at=0.0).snapshot(now=0.5)
    assert (snap.percent, snap.eta_seconds) == (100.0, 0.0)


def test_progress__unknown_total_has_no_percent_or_eta() -> None:
    progress = ProgressEstimator(total=None, started_at=0.0)
    progress.advance(10, now=1.0)
    snap = progress.snapshot(now=1.0)
    assert (snap.percent, snap.eta_seconds, snap.rate) == (None, None, 10.0)


def test_progress__snapshot_values_are_rounded_for_events() -> None:
    progress = ProgressEstimator(total=3, started_at=0.0)
    progress.advance(0, now=1.0)
    progress.advance(0, now=2.0)
    progress.advance(1, now=3.0)
    snap = progress.snapshot(now=3.0)
    assert snap.percent == 33.33
    assert snap.rate == 0.3
    assert snap.eta_seconds == 6.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "?"),
        (0, "0s"),
        (9.4, "9s"),
        (59.6, "1m00s"),
        (65, "1m05s"),
        (3_600, "1h00m00s"),
        (3_725, "1h02m05s"),
        (90_000, "25h00m00s"),
    ],
)
def test_format_duration__reads_as_hours_minutes_seconds(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_estimator__rows_set_aside_are_neither_done_nor_left_to_do() -> None:
    estimator = ProgressEstimator(total=1_000, done=0, started_at=0.0, set_aside=100)
    for second in (4.0, 7.0, 10.0):
        estimator.advance(150, now=second)
    snap = estimator.snapshot(now=10.0)
    assert (snap.done, snap.percent) == (450, 45.0)
    assert snap.eta_seconds == 10.0  # 450 left at 45 rows/s, not 550


# Synthetic timelines: ``_run`` advances ``rows`` every ``seconds`` of working time.


def _run(
    estimator: ProgressEstimator, chunks: list[tuple[int, float]], *, at: float = 0.0
) -> float:
    for rows, seconds in chunks:
        at += seconds
        estimator.advance(rows, now=at)
    return at


def test_estimator__steady_run_has_a_narrow_range_around_the_truth() -> None:
    estimator = ProgressEstimator(total=10_000, started_at=0.0)
    now = _run(estimator, [(100, 1.0)] * 25)
    snap = estimator.snapshot(now=now)
    assert snap.reliable
    assert snap.eta_seconds == 75.0
    assert snap.eta_low_seconds is not None and snap.eta_high_seconds is not None
    assert 70 < snap.eta_low_seconds < 75.0 < snap.eta_high_seconds < 80


def test_estimator__slowing_run_widens_the_range_towards_the_recent_rate() -> None:
    estimator = ProgressEstimator(total=10_000, started_at=0.0)
    now = _run(estimator, [(100, 1.0)] * 20 + [(50, 1.0)] * 10)
    snap = estimator.snapshot(now=now)
    truth = (10_000 - snap.done) / 50  # if it stays at the recent rate
    assert snap.eta_high_seconds is not None and snap.eta_seconds is not None
    assert snap.eta_seconds < truth <= snap.eta_high_seconds


def test_estimator__bursty_run_has_a_wider_range_than_a_steady_one() -> None:
    def width(chunks: list[tuple[int, float]]) -> float:
        estimator = ProgressEstimator(total=100_000, started_at=0.0)
        snap = estimator.snapshot(now=_run(estimator, chunks))
        assert snap.eta_low_seconds is not None and snap.eta_high_seconds is not None
        return snap.eta_high_seconds - snap.eta_low_seconds

    steady = width([(100, 1.0)] * 20)
    bursty = width([(100, 0.2), (100, 1.8)] * 10)  # the same 100 rows/s on average
    assert bursty > 2 * steady


def test_estimator__a_long_requested_wait_does_not_lower_the_rate() -> None:
    estimator = ProgressEstimator(total=10_000, started_at=0.0)
    now = _run(estimator, [(100, 1.0)] * 10)
    estimator.waited(60.0)  # throttled, or a --sleep, for a minute
    now = _run(estimator, [(100, 1.0)] * 5, at=now + 60.0)
    snap = estimator.snapshot(now=now)
    assert snap.rate == 100.0
    assert snap.eta_seconds == 85.0
    assert snap.elapsed_seconds == 75.0  # wall time still says what it was


def test_estimator__requested_sleeps_still_to_come_are_in_the_eta() -> None:
    estimator = ProgressEstimator(total=2_000, started_at=0.0)
    at = 0.0
    for _ in range(10):
        at += 1.0
        estimator.advance(100, now=at)
        estimator.waited(0.5)
        at += 0.5
    snap = estimator.snapshot(now=at, sleep_per_chunk=0.5, chunk_size=100)
    assert snap.rate == 100.0
    assert snap.eta_seconds == 15.0  # 10 chunks of 1 s work and 0.5 s sleep


def test_estimator__resumed_session_uses_only_its_own_history() -> None:
    first = ProgressEstimator(total=10_000, started_at=0.0)
    _run(first, [(1_000, 1.0)] * 5)  # fast, 1,000 rows/s
    second = ProgressEstimator(total=10_000, done=first.done, started_at=100.0)
    assert not second.snapshot(now=100.0).reliable
    now = _run(second, [(100, 1.0)] * 10, at=100.0)  # this session is slower
    snap = second.snapshot(now=now)
    assert snap.rate == 100.0
    assert snap.eta_seconds == 40.0  # 4,000 left at this session's 100 rows/s
    assert snap.elapsed_seconds == 10.0


def test_estimator__first_seconds_are_unreliable_and_give_no_eta() -> None:
    estimator = ProgressEstimator(total=1_000_000, started_at=0.0)
    estimator.advance(10, now=0.1)  # a tiny first chunk would promise hours, or seconds
    estimator.advance(10_000, now=0.2)
    snap = estimator.snapshot(now=0.2)
    assert not snap.reliable
    assert (snap.eta_seconds, snap.eta_low_seconds, snap.eta_high_seconds) == (None,) * 3
    assert snap.rate is not None and snap.percent == 1.0
    _run(estimator, [(10_000, 1.0)] * 2, at=0.2)
    assert estimator.snapshot(now=2.2).reliable


def test_estimator__percent_never_exceeds_100_and_done_never_goes_backwards() -> None:
    estimator = ProgressEstimator(total=100, started_at=0.0)
    estimator.advance(80, now=1.0)
    estimator.advance(-30, now=2.0)
    assert estimator.done == 80
    _run(estimator, [(50, 1.0)] * 3, at=2.0)
    snap = estimator.snapshot(now=5.0)
    assert snap.percent == 100.0
    assert (snap.eta_seconds, snap.eta_low_seconds, snap.eta_high_seconds) == (0.0, 0.0, 0.0)

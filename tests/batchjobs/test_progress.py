from __future__ import annotations

import pytest

from batchjobs.progress import ProgressEstimator, format_duration


def test_progress__no_rate_or_eta_before_any_work() -> None:
    snap = ProgressEstimator(total=100, started_at=10.0).snapshot(now=12.0)
    assert (snap.done, snap.rate, snap.eta_seconds, snap.percent) == (0, None, None, 0.0)
    assert snap.elapsed_seconds == 2.0


def test_progress__rate_percent_and_eta_from_rows_done() -> None:
    progress = ProgressEstimator(total=1_000, started_at=0.0)
    progress.advance(100, now=1.0)
    progress.advance(100, now=2.0)
    snap = progress.snapshot(now=2.0)
    assert snap.rate == 100.0
    assert snap.percent == 20.0
    assert snap.eta_seconds == 8.0  # 800 rows left at 100 rows/s


def test_progress__resumed_run_counts_only_this_process_work_in_the_rate() -> None:
    progress = ProgressEstimator(total=1_000, done=900, started_at=0.0)
    progress.advance(50, now=5.0)
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
    estimator.advance(450, now=10.0)
    snap = estimator.snapshot(now=10.0)
    assert (snap.done, snap.percent) == (450, 45.0)
    assert snap.eta_seconds == 10.0  # 450 left at 45 rows/s, not 550

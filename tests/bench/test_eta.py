"""The arithmetic of ``--eta-under-load``: which events are judged, against what truth."""

from __future__ import annotations

from tests.bench.eta import EtaResult, Point, format_eta


def _result() -> EtaResult:
    points = [
        Point(1.0, 100, None, None, None),  # not yet reliable
        Point(2.0, 240, 8.4, 7.0, 10.0),  # nearest 25%; truth 8.0
        Point(4.0, 500, 6.5, 6.2, 7.0),  # nearest 50%; truth 6.0, outside its range
        Point(10.0, 1_000, 0.0, 0.0, 0.0),  # the last row done
    ]
    return EtaResult(rows=1_000, load="nothing", points=points, finished_seconds=10.5)


def test_checks__judge_the_events_nearest_25_and_50_percent_against_the_time_left() -> None:
    quarter, half = _result().checks()
    assert (quarter.point.done, quarter.truth, half.point.done, half.truth) == (240, 8.0, 500, 6.0)
    assert quarter.error is not None and round(quarter.error, 3) == 0.05
    assert (quarter.within, quarter.in_range) == (True, True)
    assert half.error is not None and round(half.error, 3) == 0.083
    assert (half.within, half.in_range) == (False, False)


def test_checks__an_unreliable_event_has_no_estimate_and_misses() -> None:
    result = EtaResult(
        rows=1_000,
        load="nothing",
        points=[Point(1.0, 250, None, None, None), Point(4.0, 1_000, 0.0, 0.0, 0.0)],
    )
    check = result.checks()[0]
    assert (check.error, check.within, check.in_range) == (None, False, False)


def test_format_eta__prints_the_table_and_pass_or_miss_per_goal() -> None:
    text = format_eta(_result())
    assert "  PASS  eta_seconds at 25% within 10% of the time left: 5.0%" in text
    assert "  MISS  eta_seconds at 50% within 5% of the time left: 8.3%" in text
    assert "  MISS  the time left at 50% inside [eta_low, eta_high]: 6.0 in [6.2, 7.0]" in text

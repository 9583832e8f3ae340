"""The arithmetic of ``--eta-under-load``: which events are judged, against what truth."""

from __future__ import annotations

from tests.bench.eta import EtaResult, Point, format_eta, format_eta_runs
from tests.bench.machine import busy_share


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


def test_format_eta_runs__counts_the_runs_that_met_each_goal() -> None:
    good = EtaResult(
        rows=1_000,
        load="nothing",
        points=[
            Point(2.0, 250, 8.2, 7.0, 9.0),
            Point(5.0, 500, 5.1, 4.5, 6.0),
            Point(10.0, 1_000, 0, 0, 0),
        ],
        load_before="1.50",
        load_after="1.70",
        cpu_busy=0.62,
        checkpoints=1,
    )
    text = format_eta_runs([good, _result()])
    assert (
        "Machine: 1-min load average 1.50 before, 1.70 after; CPU busy 62%; 1 checkpoint "
        "started during the run." in text
    )
    assert (
        "  eta_seconds at 25% within 10%: 2 of 2 runs (errors +2.5%, +5.0%; median |error| 3.7%)"
        in text
    )
    assert (
        "  eta_seconds at 50% within 5%: 1 of 2 runs (errors +2.0%, +8.3%; median |error| 5.2%)"
        in text
    )
    assert "  the time left at 50% inside [eta_low, eta_high]: 1 of 2 runs" in text


def test_format_eta_runs__one_run_has_no_summary() -> None:
    assert format_eta_runs([_result()]) == format_eta(_result())


def test_busy_share__is_the_busy_part_of_the_cpu_time_between_two_readings() -> None:
    assert busy_share((1_000, 400), (2_000, 650)) == 0.75
    assert busy_share(None, (2_000, 650)) is None
    assert busy_share((1_000, 400), (1_000, 400)) is None

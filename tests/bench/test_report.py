"""The benchmark's arithmetic and its report, without a database (the measuring is done by
`make bench`, never by a timed test)."""

from __future__ import annotations

from tests.bench import report as bench


def _report(
    single: float, runjob: float, sql: float, naive: float, rss: dict[int, int]
) -> bench.Report:
    rows = 1_000_000
    timed = [
        bench.Measurement(bench.SINGLE_UPDATE, rows, [single, single * 1.3]),
        bench.Measurement(bench.RUNJOB, rows, [runjob], peak_rss_kib=rss[rows]),
        bench.Measurement(bench.RUNJOB_SQL, rows, [sql]),
        bench.Measurement(bench.NAIVE, rows, [naive], scaled_to=rows),
    ]
    memory = [
        bench.Measurement(bench.RUNJOB, size, [1.0], peak_rss_kib=kib) for size, kib in rss.items()
    ]
    options = {"rows": rows, "repeat": 2}
    return bench.Report(machine={"CPU": "test"}, options=options, timed=timed, memory=memory)


def test_report__ratios_use_the_best_run_of_each_approach() -> None:
    report = _report(10.0, 12.0, 11.0, 1000.0, {100_000: 60 * 1024, 1_000_000: 64 * 1024})
    assert report.ratio(report.find(bench.RUNJOB)) == 1.2
    assert report.ratio(report.find(bench.SINGLE_UPDATE)) == 1.0


def test_report__goals_pass_and_miss_on_their_thresholds() -> None:
    good = _report(10.0, 14.9, 11.4, 1000.0, {100_000: 60 * 1024, 1_000_000: 70 * 1024})
    assert [g.passed for g in good.goals()] == [True, True, True, True, True]
    bad = _report(10.0, 15.1, 11.6, 100.0, {100_000: 60 * 1024, 1_000_000: 81 * 1024})
    assert [g.passed for g in bad.goals()] == [False, False, False, False, False]


def test_format_report__prints_one_row_per_approach_and_the_goals() -> None:
    text = bench.format_report(
        _report(10.0, 12.0, 11.0, 1000.0, {100_000: 60 * 1024, 1_000_000: 64 * 1024})
    )
    for approach in (bench.SINGLE_UPDATE, bench.RUNJOB, bench.RUNJOB_SQL, bench.NAIVE):
        assert approach in text
    assert text.count("PASS") == 5
    assert "peak RSS MiB" in text


def test_format_report__eta_only_has_no_table_of_approaches() -> None:
    from tests.bench.eta import EtaResult, Point  # noqa: PLC0415

    eta = EtaResult(rows=1_000, load="nothing", points=[Point(10.0, 1_000, 0, 0, 0)])
    report = bench.Report(
        machine={"CPU": "test"},
        options={"rows": 1_000, "repeat": 1},
        timed=[],
        memory=[],
        eta=[eta],
    )
    text = bench.format_report(report)
    assert "ETA under load: runjob on 1,000 rows while nothing." in text
    assert "approach" not in text and "Goals" not in text
    assert report.as_dict()["eta_under_load"][0]["rows"] == 1_000

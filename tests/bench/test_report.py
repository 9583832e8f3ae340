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


def _workers_report(
    ratios: dict[tuple[int, bool], float], cpu_count: int, worker_rss_mib: float = 63.0
) -> bench.Report:
    """The single UPDATE at 10 s, the single runjob rows at 64 / 54 MiB (sampled), and
    ``runjob --workers N`` rows at the given ratios."""
    rows = 1_000_000
    timed = [
        bench.Measurement(bench.SINGLE_UPDATE, rows, [10.0]),
        bench.Measurement(bench.RUNJOB, rows, [12.0], 64 * 1024, sampled_rss_kib=64 * 1024),
        bench.Measurement(bench.RUNJOB_SQL, rows, [11.0], 54 * 1024, sampled_rss_kib=54 * 1024),
    ]
    for (n, sql_side), ratio in ratios.items():
        kib = int((worker_rss_mib - (9 if sql_side else 0)) * 1024)
        timed.append(
            bench.Measurement(
                bench.workers_name(n, sql_side=sql_side),
                rows,
                [10.0 * ratio],
                kib,
                coordinator_rss_kib=55 * 1024,
                tree_rss_kib=kib,
                sampled_rss_kib=kib,
            )
        )
    return bench.Report(
        machine={"CPU": "test"},
        options={"rows": rows, "repeat": 1},
        timed=timed,
        memory=[],
        cpu_count=cpu_count,
    )


def test_worker_goals__are_met_by_either_mode_and_say_which() -> None:
    ratios = {(1, False): 1.20, (1, True): 1.10, (2, False): 0.85, (2, True): 0.81}
    one, two, rss_python, rss_sql = _workers_report(ratios, cpu_count=2).worker_goals()
    assert one.name == "runjob --workers 1 <= 1.15x single UPDATE (either mode)"
    assert one.value == "Python tokens 1.20x, --sql-side 1.10x: met with --sql-side"
    assert one.passed
    assert two.value == "Python tokens 0.85x, --sql-side 0.81x: met with neither"
    assert not two.passed
    assert (rss_python.passed, rss_sql.passed) == (True, True)
    assert rss_python.value == "63.0 MiB (by workers, 1: 63.0, 2: 63.0) vs 64.0 MiB (-1.0 MiB)"


def test_worker_goals__four_workers_are_judged_only_on_four_cores() -> None:
    ratios = {(4, False): 0.50, (4, True): 0.44}
    (two_cores, *_) = _workers_report(ratios, cpu_count=2).worker_goals()
    assert (two_cores.applicable, two_cores.verdict) == (False, "n/a ")
    assert two_cores.name.endswith("(either mode), on >= 4 cores")
    assert two_cores.value.endswith(
        "met with --sql-side; not applicable on 2 cores (os.cpu_count() = 2)"
    )
    (four_cores, *_) = _workers_report(ratios, cpu_count=4).worker_goals()
    assert (four_cores.applicable, four_cores.verdict) == (True, "PASS")
    assert four_cores.value.endswith("(os.cpu_count() = 4)")


def test_worker_goals__a_worker_larger_than_the_single_process_misses() -> None:
    goals = _workers_report({(2, False): 0.7, (2, True): 0.7}, 2, 64.5).worker_goals()
    assert [g.verdict for g in goals] == ["PASS", "MISS", "MISS"]


def test_format_report__prints_the_workers_memory_table_and_the_na_goal() -> None:
    report = _workers_report({(4, False): 0.50, (4, True): 0.44}, cpu_count=2)
    text = bench.format_report(report)
    assert "largest worker  coordinator  exact, whole tree" in text
    memory_rows = text.split("largest worker  coordinator")[1].splitlines()[2:4]
    assert memory_rows[1].startswith("runjob --workers 4 --sql-side ")
    assert memory_rows[1].split()[-3:] == ["54.0", "55.0", "54.0"]
    assert "  n/a   runjob --workers 4 <= 0.45x single UPDATE" in text
    assert report.as_dict()["cpu_count"] == 2
    assert "CPU during the runs" not in text  # measured by run.py only


def test_format_report__prints_each_approachs_cpu_when_measured() -> None:
    report = _workers_report({(2, False): 0.7}, cpu_count=2)
    report.timed[0].add(10.0, None, None, cpu_busy=0.55)
    report.timed[3].add(7.0, None, None, cpu_seconds=5.5, cpu_busy=0.97)
    lines = bench.format_report(report).split("CPU during the runs")[1].splitlines()
    assert lines[0] == " (median of the repeats; the machine has 2 cores):"
    assert lines[4].split() == ["single", "UPDATE", "-", "55%"]
    assert lines[5].split()[-2:] == ["5.50", "97%"]

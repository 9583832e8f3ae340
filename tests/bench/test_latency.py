"""The arithmetic of ``--latency-under-load``: pgbench's log read, windows, percentiles."""

from __future__ import annotations

import pytest

from tests.bench.latency import (
    LatencyRun,
    Transaction,
    format_latency,
    percentile,
    read_pgbench_log,
)


def test_read_pgbench_log__reads_latency_and_completion_time_and_skips_broken_lines() -> None:
    lines = [
        "0 1 1500 0 1796054919 479983 44\n",  # with -R: the schedule lag last
        "1 7 250000 0 1796054920 5\n",  # without -R
        "2 3 skipped 0 1796054920 10 12\n",  # --latency-limit: no latency
        "3 178 4629 0 1796",  # cut short by the SIGINT that stopped pgbench
        "\n",
    ]
    assert read_pgbench_log(lines) == [
        Transaction(1796054919.479983, 1.5),
        Transaction(1796054920.000005, 250.0),
    ]


def test_percentile__is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 1001)]  # 1..1000, in any order
    assert percentile(list(reversed(values)), 0.99) == 990.0
    assert percentile(values, 0.50) == 500.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([1.0, 2.0], 0.99) == 2.0  # a p99 of few values is their maximum
    with pytest.raises(ValueError):
        percentile([], 0.99)


def test_latency_run__counts_only_the_transactions_that_completed_in_the_window() -> None:
    transactions = [Transaction(float(t), float(t)) for t in range(100)]  # ms == second
    run = LatencyRun.of("job", transactions, 10.0, 20.0, wal_bytes=3 * 2**20, rows=5)
    assert (run.transactions, run.seconds) == (11, 10.0)
    assert (run.p50_ms, run.p99_ms, run.max_ms) == (15.0, 20.0, 20.0)
    with pytest.raises(ValueError, match="no transaction completed in the window of late"):
        LatencyRun.of("late", transactions, 200.0, 210.0)


def test_format_latency__one_row_per_window() -> None:
    runs = [
        LatencyRun("no job, before --workers 1", 8.0, 1_590, 1.1, 8.7, 15.6, 23 * 2**20),
        LatencyRun("runjob --workers 1 (Python tokens)", 12.0, 2_400, 2.0, 82.2, 121.6, None),
    ]
    text = format_latency(runs, load="pgbench, 4 clients")
    assert "by window; pgbench, 4 clients:" in text
    assert "no job, before --workers 1              8.0         1,590     1.1     8.7" in text
    assert text.splitlines()[5].endswith("82.2   121.6        -")

"""The whole benchmark: every approach on a fresh table, repeated and interleaved, then
runjob's peak memory at several table sizes."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from django.db import DatabaseError

from tests.bench.approaches import (
    DEFAULT_JOB,
    WORKER_COUNTS,
    Approach,
    Runjob,
    default_approaches,
)
from tests.bench.load import (
    LOAD,
    measure_eta_under_load,
    measure_latency_under_load,
    pgbench_binary,
)
from tests.bench.machine import busy_share, cpu_times, describe_machine, load_average
from tests.bench.measure import BenchmarkError, wal_bytes_since, wal_lsn
from tests.bench.report import MEMORY, MEMORY_PROBE_ROWS, RUNJOB, Measurement, Report
from tests.bench.table import Witness, empty_table, fresh_table

TEN_MILLION = 10_000_000


@dataclass(frozen=True)
class Options:
    rows: int = 1_000_000
    naive_rows: int = 100_000
    repeat: int = 1
    with_10m: bool = False
    job: str = DEFAULT_JOB
    eta_under_load: bool = False
    eta_only: bool = False
    workers: tuple[int, ...] = WORKER_COUNTS  # runjob --workers N rows; () leaves them out
    latency_under_load: bool = False

    def __post_init__(self) -> None:
        if self.rows <= 0 or self.naive_rows <= 0 or self.repeat <= 0:
            raise BenchmarkError("--rows, --naive-rows and --repeat must be greater than zero.")
        if self.eta_only and not self.eta_under_load:
            raise BenchmarkError(
                "--eta-only measures the ETA under load: drop --no-eta-under-load."
            )


def run(
    options: Options,
    *,
    approaches: Sequence[Approach] | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Report:
    """Measure every approach ``repeat`` times, interleaved, then the memory probes, then
    the ETA under load ``repeat`` times (only that with ``eta_only``).

    Interleaving (A B C D, A B C D...) rather than A A B B... spreads a slow minute on a
    shared machine over every approach instead of one.
    """
    began = time.perf_counter()
    if options.eta_only:
        approaches = []
    elif approaches is None:
        approaches = default_approaches(
            job=options.job, naive_rows=options.naive_rows, workers=options.workers
        )
    n = options.rows
    report = Report(
        machine=describe_machine(),
        options=asdict(options),
        timed=[],
        memory=[],
        cpu_count=os.cpu_count(),
    )
    for approach in approaches:
        rows = approach.rows(n)
        report.timed.append(Measurement(approach.name, rows, scaled_to=n if rows < n else None))
    if options.eta_under_load or options.latency_under_load:
        pgbench_binary()  # refuse before any measuring, not after minutes of it
    try:
        for k in range(options.repeat):
            if options.repeat > 1:
                say(f"-- round {k + 1} of {options.repeat}")
            for approach, m in zip(approaches, report.timed, strict=True):
                _measure(approach, m, n, say)

        probe_runjob = Runjob(MEMORY, options.job)
        sizes = [MEMORY_PROBE_ROWS, n, *([TEN_MILLION] if options.with_10m else [])]
        if options.eta_only:
            sizes = []
        for size in sorted(set(sizes)):
            probe = Measurement(MEMORY, size)
            runjob = report.find(RUNJOB)
            if size == n and runjob is not None:  # measured already: the same command
                probe.seconds, probe.peak_rss_kib = list(runjob.seconds), runjob.peak_rss_kib
            else:
                _measure(probe_runjob, probe, size, say)
            report.memory.append(probe)
        if options.eta_under_load:
            for k in range(options.repeat):
                if options.repeat > 1:
                    say(f"-- ETA under load, run {k + 1} of {options.repeat}")
                report.eta.append(measure_eta_under_load(n, job=options.job, say=say))
        if options.latency_under_load and not options.eta_only:
            report.latency_load = LOAD
            report.latency = measure_latency_under_load(n, job=options.job, say=say)
    finally:
        say("Emptying the tickets table.")
        with contextlib.suppress(DatabaseError):
            empty_table()
    report.total_seconds = time.perf_counter() - began
    report.load_after = load_average()
    return report


def _measure(
    approach: Approach, m: Measurement, table_rows: int, say: Callable[[str], None]
) -> None:
    """One run of ``approach`` on a fresh table of ``table_rows``, added to ``m``."""
    say(f"{m.approach}: seeding {table_rows:,} rows...")
    fresh_table(table_rows)
    rows = approach.rows(table_rows)
    witness = Witness.take(rows)
    wal_before, cpu_before = wal_lsn(), cpu_times()
    sample = approach.run(rows)
    busy = busy_share(cpu_before, cpu_times())
    wal = wal_bytes_since(wal_before)
    witness.check(m.approach)
    m.add(
        sample.seconds,
        sample.peak_rss_kib,
        wal,
        sample.job_seconds,
        coordinator_rss_kib=sample.coordinator_rss_kib,
        tree_rss_kib=sample.tree_rss_kib,
        sampled_rss_kib=sample.sampled_rss_kib,
        cpu_seconds=sample.cpu_seconds,
        cpu_busy=busy,
    )
    rss = sample.peak_rss_kib
    rss_text = "" if rss is None else f", peak RSS {rss / 1024:.1f} MiB"
    note = f"; {sample.note}" if sample.note else ""
    say(f"{m.approach}: {m.rows:,} rows in {sample.seconds:,.2f} s{rss_text}{note}")

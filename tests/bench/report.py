"""The benchmark's arithmetic and its report: measurements, ratios, goals, the table.

Pure: no database, no processes. The approaches' names here are the table's rows that the
goals read; an approach the goals do not know still gets its row.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from tests.bench.eta import EtaResult, format_eta_runs
from tests.bench.latency import LatencyRun, format_latency

SINGLE_UPDATE = "single UPDATE"
RUNJOB = "runjob (Python tokens)"
RUNJOB_SQL = "runjob --sql-side"
NAIVE = "naive ORM bulk_update"
MEMORY = "runjob (Python tokens), memory probe"


def workers_name(workers: int, *, sql_side: bool) -> str:
    """The row of ``runjob --workers N`` in one mode."""
    return f"runjob --workers {workers}" + (" --sql-side" if sql_side else " (Python tokens)")


MEMORY_PROBE_ROWS = 100_000

# The targets the library was built to; printed as PASS/MISS, never enforced.
RUNJOB_MAX_RATIO = 1.5
SQL_SIDE_MAX_RATIO = 1.15
MIN_SPEEDUP_OVER_NAIVE = 10.0
MAX_RSS_MIB = 80.0
MAX_RSS_GROWTH = 1.2
# Many workers (issue 9): the best ratio of either mode, per number of workers; and the
# cores a goal needs before it means anything (4 workers on 2 cores share 2 cores).
WORKERS_MAX_RATIO = {1: 1.15, 2: 0.80, 4: 0.45}
WORKERS_MIN_CORES = {4: 4}


@dataclass
class Measurement:
    """One approach at one size; ``seconds`` holds one figure per repeat."""

    approach: str
    rows: int
    seconds: list[float] = field(default_factory=list)
    peak_rss_kib: int | None = None
    # WAL the server wrote during the run (cluster-wide: another database's writes at the
    # same time count too, which is why the smallest figure of the repeats is kept).
    wal_bytes: int | None = None
    scaled_to: int | None = None  # the rows reported, when fewer were run (the naive way)
    # A runjob's own duration_seconds per repeat (job.finished): start-up excluded. JSON only.
    job_seconds: list[float] = field(default_factory=list)
    # runjob --workers N: peak_rss_kib is the largest worker's own; these are the
    # coordinator's own and the exact largest of the whole tree (see measure.TreePeaks).
    coordinator_rss_kib: int | None = None
    tree_rss_kib: int | None = None
    # runjob's own peak, sampled (VmHWM; with workers, the largest worker's): the figure
    # the workers' memory goal compares, one instrument for both sides.
    sampled_rss_kib: int | None = None
    # Per repeat: CPU seconds of the command's own processes (coordinator and workers; none
    # for the single UPDATE, whose work is in the server), and the share of the machine's
    # CPU time that was busy during the run (everything: the server, the neighbours).
    cpu_seconds: list[float] = field(default_factory=list)
    cpu_busy: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rate(self) -> float:
        """Rows per second, from the best run."""
        return self.rows / self.best if self.best > 0 else float("inf")

    @property
    def seconds_per_row(self) -> float:
        return self.best / self.rows

    @property
    def median_seconds_per_row(self) -> float:
        return self.median / self.rows

    @property
    def peak_rss_mib(self) -> float | None:
        return None if self.peak_rss_kib is None else self.peak_rss_kib / 1024

    @property
    def own_rss_mib(self) -> float | None:
        """The sampled figure when there is one (see ``sampled_rss_kib``), else the row's."""
        kib = self.sampled_rss_kib if self.sampled_rss_kib is not None else self.peak_rss_kib
        return None if kib is None else kib / 1024

    @property
    def job_median(self) -> float | None:
        return statistics.median(self.job_seconds) if self.job_seconds else None

    def add(
        self,
        seconds: float,
        peak_rss_kib: int | None,
        wal_bytes: int | None,
        job_seconds: float | None = None,
        *,
        coordinator_rss_kib: int | None = None,
        tree_rss_kib: int | None = None,
        sampled_rss_kib: int | None = None,
        cpu_seconds: float | None = None,
        cpu_busy: float | None = None,
    ) -> None:
        self.seconds.append(seconds)
        if peak_rss_kib is not None:
            self.peak_rss_kib = max(self.peak_rss_kib or 0, peak_rss_kib)
        if coordinator_rss_kib is not None:
            self.coordinator_rss_kib = max(self.coordinator_rss_kib or 0, coordinator_rss_kib)
        if tree_rss_kib is not None:
            self.tree_rss_kib = max(self.tree_rss_kib or 0, tree_rss_kib)
        if sampled_rss_kib is not None:
            self.sampled_rss_kib = max(self.sampled_rss_kib or 0, sampled_rss_kib)
        if cpu_seconds is not None:
            self.cpu_seconds.append(cpu_seconds)
        if cpu_busy is not None:
            self.cpu_busy.append(cpu_busy)
        if wal_bytes is not None:
            self.wal_bytes = min(self.wal_bytes or wal_bytes, wal_bytes)
        if job_seconds is not None:
            self.job_seconds.append(job_seconds)

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "best": self.best,
            "median": self.median,
            "rows_per_second": self.rate,
            "peak_rss_mib": self.peak_rss_mib,
        }


@dataclass(frozen=True)
class Goal:
    name: str
    value: str
    passed: bool
    applicable: bool = True  # False: not judged on this machine (printed "n/a")

    @property
    def verdict(self) -> str:
        return "n/a " if not self.applicable else "PASS" if self.passed else "MISS"


@dataclass
class Report:
    machine: dict[str, str]
    options: dict[str, Any]
    timed: list[Measurement]
    memory: list[Measurement]
    total_seconds: float = 0.0
    load_after: str = ""
    eta: list[EtaResult] = field(default_factory=list)  # --eta-under-load, one per run
    cpu_count: int | None = None  # os.cpu_count(): which worker goals apply here
    latency: list[LatencyRun] = field(default_factory=list)  # --latency-under-load
    latency_load: str = ""  # the live load of those windows, as a sentence

    def find(self, approach: str) -> Measurement | None:
        return next((m for m in self.timed if m.approach == approach), None)

    def ratio(self, m: Measurement) -> float | None:
        """Best seconds per row relative to the single UPDATE's best (1.0: the database's
        limit). The goals use this one: noise only ever adds time."""
        ref = self.find(SINGLE_UPDATE)
        return m.seconds_per_row / ref.seconds_per_row if ref else None

    def median_ratio(self, m: Measurement) -> float | None:
        ref = self.find(SINGLE_UPDATE)
        return m.median_seconds_per_row / ref.median_seconds_per_row if ref else None

    def goals(self) -> list[Goal]:
        out: list[Goal] = []
        runjob, sql_side, naive = self.find(RUNJOB), self.find(RUNJOB_SQL), self.find(NAIVE)
        for m, limit in ((runjob, RUNJOB_MAX_RATIO), (sql_side, SQL_SIDE_MAX_RATIO)):
            if m and (r := self.ratio(m)) is not None:
                out.append(Goal(f"{m.approach} <= {limit}x single UPDATE", f"{r:.2f}x", r <= limit))
        if runjob and naive:
            speedup = naive.seconds_per_row / runjob.seconds_per_row
            out.append(
                Goal(
                    f"runjob >= {MIN_SPEEDUP_OVER_NAIVE:g}x faster than naive ORM",
                    f"{speedup:.1f}x",
                    speedup >= MIN_SPEEDUP_OVER_NAIVE,
                )
            )
        probes = {m.rows: m.peak_rss_mib for m in self.memory if m.peak_rss_mib is not None}
        rows = self.options["rows"]
        if rows in probes:
            out.append(
                Goal(
                    f"runjob peak RSS <= {MAX_RSS_MIB:g} MiB at {rows:,} rows",
                    f"{probes[rows]:.1f} MiB",
                    probes[rows] <= MAX_RSS_MIB,
                )
            )
        small = probes.get(MEMORY_PROBE_ROWS)
        for size, mib in sorted(probes.items()):
            if size <= MEMORY_PROBE_ROWS or small is None:
                continue
            out.append(
                Goal(
                    f"runjob peak RSS at {size:,} rows <= {MAX_RSS_GROWTH}x "
                    f"its {MEMORY_PROBE_ROWS:,}-row figure",
                    f"{mib / small:.2f}x ({mib:.1f} / {small:.1f} MiB)",
                    mib / small <= MAX_RSS_GROWTH,
                )
            )
        return out + self.worker_goals()

    def worker_goals(self) -> list[Goal]:
        """Issue 9's goals: per number of workers, the ratio of either mode (the goal is met
        if one of them meets it, and the value says which); per mode, the largest worker's
        peak RSS against the single process's."""
        out: list[Goal] = []
        for n, limit in WORKERS_MAX_RATIO.items():
            modes = [
                (label, self.ratio(m))
                for label, sql_side in (("Python tokens", False), ("--sql-side", True))
                if (m := self.find(workers_name(n, sql_side=sql_side))) is not None
            ]
            ratios = [(label, r) for label, r in modes if r is not None]
            if not ratios:
                continue
            met = [label for label, r in ratios if r <= limit]
            value = ", ".join(f"{label} {r:.2f}x" for label, r in ratios)
            value += f": met with {' and '.join(met)}" if met else ": met with neither"
            name = f"runjob --workers {n} <= {limit:.2f}x single UPDATE (either mode)"
            cores = WORKERS_MIN_CORES.get(n)
            if cores is None:
                out.append(Goal(name, value, bool(met)))
                continue
            name += f", on >= {cores} cores"
            if self.cpu_count is not None and self.cpu_count >= cores:
                out.append(Goal(name, f"{value} (os.cpu_count() = {self.cpu_count})", bool(met)))
            else:
                out.append(
                    Goal(
                        name,
                        f"{value}; not applicable on {self.cpu_count} cores "
                        f"(os.cpu_count() = {self.cpu_count})",
                        passed=False,
                        applicable=False,
                    )
                )
        for single, sql_side in ((RUNJOB, False), (RUNJOB_SQL, True)):
            one = self.find(single)
            shared = [
                m
                for n in WORKERS_MAX_RATIO
                if (m := self.find(workers_name(n, sql_side=sql_side))) is not None
                and m.own_rss_mib is not None
            ]
            if one is None or one.own_rss_mib is None or not shared:
                continue
            largest = max(m.own_rss_mib or 0.0 for m in shared)
            each = ", ".join(f"{m.approach.split()[2]}: {m.own_rss_mib or 0:.1f}" for m in shared)
            out.append(
                Goal(
                    f"peak RSS per worker <= the single process's ({single}; both sampled)",
                    f"{largest:.1f} MiB (by workers, {each}) vs {one.own_rss_mib:.1f} MiB "
                    f"({largest - one.own_rss_mib:+.1f} MiB)",
                    largest <= one.own_rss_mib,
                )
            )
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "options": self.options,
            "timed": [
                {**m.as_dict(), "ratio": self.ratio(m), "median_ratio": self.median_ratio(m)}
                for m in self.timed
            ],
            "memory": [m.as_dict() for m in self.memory],
            "goals": [asdict(g) for g in self.goals()],
            "total_seconds": self.total_seconds,
            "load_after": self.load_after,
            "eta_under_load": [r.as_dict() for r in self.eta] or None,
            "cpu_count": self.cpu_count,
            "latency_under_load": [r.as_dict() for r in self.latency] or None,
            "latency_load": self.latency_load or None,
        }


def format_report(report: Report) -> str:
    """The machine, one aligned table, the memory probes and the goals, as plain text."""
    lines = [f"{k + ':':<12} {v}" for k, v in report.machine.items()]
    if not report.timed:  # --eta-only
        return "\n".join([*lines, "", format_eta_runs(report.eta), _whole(report)])
    repeat = report.options["repeat"]
    lines += [
        "",
        f"Token rotation of {report.options['rows']:,} rows, best of {repeat}"
        + (" (median alongside)" if repeat > 1 else "")
        + "; each approach on a fresh table.",
        "",
    ]
    header = ["approach", "rows", "best s", "median s", "run's own s", "rows/s", "peak RSS MiB"]
    header += ["WAL MiB"]
    header += ["ratio", *(["median ratio"] if repeat > 1 else [])]
    body, notes = [], []
    for m in report.timed:
        ratio, median_ratio = report.ratio(m), report.median_ratio(m)
        approach, rows, best, median, wal = m.approach, m.rows, m.best, m.median, m.wal_bytes
        if m.scaled_to is not None:
            # WAL is not scaled: the first change to a page after a checkpoint logs the
            # whole page, so a sample's WAL per row says little about a full pass's.
            wal_text = "" if wal is None else f" and wrote {wal / 2**20:,.0f} MiB of WAL"
            notes.append(
                f"* {m.approach}: ran on {m.rows:,} rows{wal_text}; seconds scaled to "
                f"{m.scaled_to:,}."
            )
            scale = m.scaled_to / m.rows
            approach, rows = m.approach + " *", m.scaled_to
            best, median, wal = best * scale, median * scale, None
        body.append(
            [
                approach,
                f"{rows:,}",
                f"{best:,.2f}",
                f"{median:,.2f}",
                "-" if m.job_median is None else f"{m.job_median:,.2f}",
                f"{m.rate:,.0f}",
                "-" if m.peak_rss_mib is None else f"{m.peak_rss_mib:,.1f}",
                "-" if wal is None else f"{wal / 2**20:,.0f}",
                "-" if ratio is None else f"{ratio:.2f}x",
                *([] if repeat == 1 else ["-" if median_ratio is None else f"{median_ratio:.2f}x"]),
            ]
        )
    lines += _table(header, body)
    lines += [
        "",
        "ratio: best seconds per row relative to the single UPDATE's (1.00x is the database's "
        "limit); the goals use it. run's own s: job.finished's duration_seconds (median), "
        "start-up left out.",
        "peak RSS: of the command's own process (the single UPDATE runs in the database); "
        "with --workers, of the largest worker. WAL: written by the server during the run.",
        *notes,
    ]
    cpu = [m for m in report.timed if m.cpu_busy]
    if cpu:
        lines += [
            "",
            f"CPU during the runs (median of the repeats; the machine has {report.cpu_count} "
            "cores):",
            "",
        ]
        lines += _table(
            ["approach", "command's CPU s", "machine busy"],
            [
                [
                    m.approach,
                    "-" if not m.cpu_seconds else f"{statistics.median(m.cpu_seconds):,.2f}",
                    f"{100 * statistics.median(m.cpu_busy):.0f}%",
                ]
                for m in cpu
            ],
        )
        lines += [
            "command's CPU s: user + system time of its processes (a coordinator's workers "
            "included). machine busy: of all cores, server and neighbours included.",
        ]
    if report.memory:
        lines += ["", "Peak RSS of the runjob process (Python tokens) by table size:", ""]
        lines += _table(
            ["rows", "seconds", "peak RSS MiB"],
            [
                [f"{m.rows:,}", f"{m.best:,.2f}", f"{m.peak_rss_mib or 0:,.1f}"]
                for m in report.memory
            ],
        )
    shared = [m for m in report.timed if m.coordinator_rss_kib is not None]
    if shared:
        lines += [
            "",
            "Peak RSS with many workers, MiB (each process's own VmHWM, sampled every 50 ms; "
            "exact: wait4's, the largest of the coordinator and its reaped workers):",
            "",
        ]
        lines += _table(
            ["approach", "largest worker", "coordinator", "exact, whole tree"],
            [
                [
                    m.approach,
                    f"{m.peak_rss_mib or 0:,.1f}",
                    f"{(m.coordinator_rss_kib or 0) / 1024:,.1f}",
                    "-" if m.tree_rss_kib is None else f"{m.tree_rss_kib / 1024:,.1f}",
                ]
                for m in shared
            ],
        )
    lines += ["", "Goals (a measurement, not a test):"]
    for goal in report.goals():
        lines.append(f"  {goal.verdict}  {goal.name}: {goal.value}")
    if report.latency:
        lines += ["", format_latency(report.latency, load=report.latency_load)]
    if report.eta:
        lines += ["", format_eta_runs(report.eta)]
    lines += [_whole(report)]
    return "\n".join(lines)


def _whole(report: Report) -> str:
    return (
        f"\nWhole benchmark: {report.total_seconds:,.0f} s; "
        f"load average after: {report.load_after}."
    )


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        # The first column reads left to right; the figures line up on the right.
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *map(line, rows)]

"""The benchmark's arithmetic and its report: measurements, ratios, goals, the table.

Pure: no database, no processes. The approaches' names here are the table's rows that the
goals read; an approach the goals do not know still gets its row.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from tests.bench.eta import EtaResult, format_eta_runs

SINGLE_UPDATE = "single UPDATE"
RUNJOB = "runjob (Python tokens)"
RUNJOB_SQL = "runjob --sql-side"
NAIVE = "naive ORM bulk_update"
MEMORY = "runjob (Python tokens), memory probe"

MEMORY_PROBE_ROWS = 100_000

# The targets the library was built to; printed as PASS/MISS, never enforced.
RUNJOB_MAX_RATIO = 1.5
SQL_SIDE_MAX_RATIO = 1.15
MIN_SPEEDUP_OVER_NAIVE = 10.0
MAX_RSS_MIB = 80.0
MAX_RSS_GROWTH = 1.2


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

    def add(
        self,
        seconds: float,
        peak_rss_kib: int | None,
        wal_bytes: int | None,
        job_seconds: float | None = None,
    ) -> None:
        self.seconds.append(seconds)
        if peak_rss_kib is not None:
            self.peak_rss_kib = max(self.peak_rss_kib or 0, peak_rss_kib)
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


@dataclass
class Report:
    machine: dict[str, str]
    options: dict[str, Any]
    timed: list[Measurement]
    memory: list[Measurement]
    total_seconds: float = 0.0
    load_after: str = ""
    eta: list[EtaResult] = field(default_factory=list)  # --eta-under-load, one per run

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
    header = ["approach", "rows", "best s", "median s", "rows/s", "peak RSS MiB", "WAL MiB"]
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
        "limit); the goals use it.",
        "peak RSS: of the command's own process (the single UPDATE runs in the database). "
        "WAL: written by the server during the run.",
        *notes,
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
    lines += ["", "Goals (a measurement, not a test):"]
    for goal in report.goals():
        verdict = "PASS" if goal.passed else "MISS"
        lines.append(f"  {verdict}  {goal.name}: {goal.value}")
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

"""The live application's latency while a run goes on: the arithmetic of
``--latency-under-load``. Pure: no database, no processes (``load.py`` runs pgbench).

pgbench writes one line per transaction with ``--log``: ``client_id transaction_no time
script_no time_epoch time_us [schedule_lag]``, where ``time`` is the latency in
microseconds and ``time_epoch``/``time_us`` say when the transaction completed. With a
fixed rate (``-R``) pgbench measures ``time`` from the transaction's *scheduled* start, so a
transaction that had to wait for a slow one before it is counted with that wait: what a
user of an application with a steady arrival rate sees. ``-P`` progress lines only give a
mean and a standard deviation per interval, from which no percentile can be had.

A window (no job; a run from its ``job.started`` to its ``job.finished``) is judged on the
transactions that completed inside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Transaction:
    end: float  # Unix time at which it completed
    latency_ms: float


def read_pgbench_log(lines: Iterable[str]) -> list[Transaction]:
    """The transactions of a pgbench ``--log`` file. Lines that are not whole are skipped:
    pgbench ended by a signal leaves its last buffered line cut short (see ``load.py``);
    so are ``skipped`` and ``failed`` transactions, which have no latency."""
    out = []
    for line in lines:
        fields = line.split()
        if len(fields) < 6:
            continue
        try:
            latency_us, epoch, us = int(fields[2]), int(fields[4]), int(fields[5])
        except ValueError:
            continue
        out.append(Transaction(epoch + us / 1e6, latency_us / 1000))
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (``q`` in 0..1]): the smallest value that at least
    ``q`` of the values do not exceed. p99 of 1,000 transactions is the 990th fastest."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass(frozen=True)
class LatencyRun:
    """One window of the live load: its transactions' latency and the WAL written."""

    label: str  # "no job" or the run's approach
    seconds: float
    transactions: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    wal_bytes: int | None = None  # the server's, cluster-wide, the load's own included
    rows: int | None = None  # rows the job rotated in the window (None: no job)

    @classmethod
    def of(
        cls,
        label: str,
        transactions: Iterable[Transaction],
        start: float,
        end: float,
        *,
        wal_bytes: int | None = None,
        rows: int | None = None,
    ) -> LatencyRun:
        """The transactions that completed in ``[start, end]`` (Unix times)."""
        latencies = [t.latency_ms for t in transactions if start <= t.end <= end]
        if not latencies:
            raise ValueError(f"no transaction completed in the window of {label}")
        return cls(
            label,
            end - start,
            len(latencies),
            percentile(latencies, 0.50),
            percentile(latencies, 0.99),
            max(latencies),
            wal_bytes,
            rows,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def format_latency(runs: Sequence[LatencyRun], *, load: str = "") -> str:
    lines = [
        "Live load during the runs: pgbench's latency per transaction (from its scheduled "
        "start), by window" + (f"; {load}" if load else "") + ":",
        "",
    ]
    header = ["window", "seconds", "transactions", "p50 ms", "p99 ms", "max ms", "WAL MiB"]
    body = [
        [
            r.label,
            f"{r.seconds:,.1f}",
            f"{r.transactions:,}",
            f"{r.p50_ms:,.1f}",
            f"{r.p99_ms:,.1f}",
            f"{r.max_ms:,.1f}",
            "-" if r.wal_bytes is None else f"{r.wal_bytes / 2**20:,.0f}",
        ]
        for r in runs
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    lines += [line(header), "  ".join("-" * w for w in widths), *map(line, body)]
    lines += [
        "",
        "A run's window is its job.started to its job.finished (start-up before it, "
        "verification inside it); WAL is the server's in a 'no job' window and, for a run, "
        "from its command's start to its end, the load's own included (the 'no job' rows "
        "show that share).",
    ]
    return "\n".join(lines)

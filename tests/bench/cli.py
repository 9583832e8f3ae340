"""``python -m tests.bench``: the options, the safety question, the report on stdout.

Progress goes to stderr, the report to stdout, an error to stderr as one line (exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tests.bench.approaches import DEFAULT_JOB, WORKER_COUNTS
from tests.bench.measure import BenchmarkError
from tests.bench.report import format_report
from tests.bench.run import Options, run
from tests.bench.table import has_tickets, prepare_database

PROG = "python -m tests.bench"


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not greater than zero")
    return value


def _worker_counts(text: str) -> tuple[int, ...]:
    if text.strip().lower() == "none":
        return ()
    counts = tuple(_positive_int(part) for part in text.split(",") if part.strip())
    if not counts or any(n > 64 for n in counts):
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers of workers from 1 to 64")
    return tuple(sorted(set(counts)))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Measure token rotation on PostgreSQL: one UPDATE, runjob (Python and "
        "SQL-side tokens) and a naive ORM bulk_update, each on a fresh table, with peak "
        "memory. It empties the tickets table.",
    )
    p.add_argument(
        "--rows",
        type=_positive_int,
        default=1_000_000,
        help="Table size for every approach (default 1,000,000).",
    )
    p.add_argument(
        "--naive-rows",
        type=_positive_int,
        default=100_000,
        help="Rows the naive ORM way rotates (default 100,000, at most --rows); its "
        "figures are scaled to --rows.",
    )
    p.add_argument(
        "--repeat",
        type=_positive_int,
        default=1,
        help="Time each approach this many times (interleaved); report best and median. "
        "The ETA under load is measured this many times too.",
    )
    p.add_argument(
        "--with-10m",
        action="store_true",
        help="Also measure runjob's peak memory on 10,000,000 rows (several minutes more).",
    )
    p.add_argument(
        "--eta-under-load",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Also run runjob once more on --rows rows while pgbench updates random tickets "
        "(4 clients, 200 transactions/s), and judge its ETA at 25%% and 50%% against the "
        "time that actually remained (default on; needs pgbench).",
    )
    p.add_argument(
        "--workers",
        type=_worker_counts,
        default=WORKER_COUNTS,
        metavar="N,N...",
        help="Also time runjob --workers N for each N, with Python tokens and with "
        "--sql-side (default 1,2,4; 'none' leaves them out).",
    )
    p.add_argument(
        "--latency-under-load",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Also run runjob --workers 1 and --workers 2 while pgbench updates random "
        "tickets (as for --eta-under-load), and report the load's p50/p99 latency and the "
        "WAL, with and without the run (default on; needs pgbench).",
    )
    p.add_argument(
        "--eta-only",
        action="store_true",
        help="Measure only the ETA under load (--repeat times): no approaches, no memory probes.",
    )
    p.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="Also write the results as JSON to PATH (e.g. bench-results/1m.json).",
    )
    p.add_argument(
        "--noinput",
        "--no-input",
        action="store_false",
        dest="interactive",
        help="Do not ask before emptying a tickets table that holds rows.",
    )
    p.add_argument(
        "--job",
        default=DEFAULT_JOB,
        metavar="NAME",
        help=f"The job the runjob rows run (default {DEFAULT_JOB}); it must rotate every "
        "ticket's token, as the other rows do.",
    )
    p.add_argument(
        "-v",
        "--verbosity",
        type=int,
        choices=[0, 1, 2, 3],
        default=1,
        help="0: the report only; 1 and more: progress on stderr too (default 1).",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def say(message: str) -> None:
        if args.verbosity:
            sys.stderr.write(message + "\n")

    try:
        options = Options(
            rows=args.rows,
            naive_rows=args.naive_rows,
            repeat=args.repeat,
            with_10m=args.with_10m,
            job=args.job,
            eta_under_load=args.eta_under_load,
            eta_only=args.eta_only,
            workers=args.workers,
            latency_under_load=args.latency_under_load,
        )
        if created := prepare_database():
            say(created)
        if has_tickets():
            _confirm(args.interactive)
        report = run(options, say=say)
    except BenchmarkError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted.\n")
        return 130
    sys.stdout.write(format_report(report) + "\n")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
        say(f"Results written to {args.json}.")
    return 0


def _confirm(interactive: bool) -> None:
    if not interactive:
        return
    if not sys.stdin.isatty():
        raise BenchmarkError(
            "The tickets table holds rows that the benchmark would delete. "
            "Pass --noinput to go ahead."
        )
    answer = input(
        "The benchmark deletes every ticket in this database and abandons an unfinished "
        "run of the job (runjob --restart). Type 'yes' to continue: "
    )
    if answer.strip().lower() != "yes":
        raise BenchmarkError("Nothing was changed.")

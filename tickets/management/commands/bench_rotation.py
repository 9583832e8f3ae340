from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from batchjobs.arguments import positive_int
from tickets import benchmark


class Command(BaseCommand):
    help = (
        "Measure token rotation on PostgreSQL: one UPDATE, runjob (Python and SQL-side "
        "tokens) and a naive ORM bulk_update, each on a fresh table, with peak memory. "
        "It empties the tickets table."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--rows",
            type=positive_int,
            default=1_000_000,
            help="Table size for every approach (default 1,000,000).",
        )
        parser.add_argument(
            "--naive-rows",
            type=positive_int,
            default=100_000,
            help="Rows the naive ORM way rotates (default 100,000, at most --rows); its "
            "figures are scaled to --rows.",
        )
        parser.add_argument(
            "--repeat",
            type=positive_int,
            default=1,
            help="Time each approach this many times (interleaved); report best and median.",
        )
        parser.add_argument(
            "--with-10m",
            action="store_true",
            help="Also measure runjob's peak memory on 10,000,000 rows (several minutes more).",
        )
        parser.add_argument(
            "--json",
            type=Path,
            metavar="PATH",
            help="Also write the results as JSON to PATH (e.g. bench-results/1m.json).",
        )
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Do not ask before emptying a tickets table that holds rows.",
        )

    def handle(
        self,
        *,
        rows: int,
        naive_rows: int,
        repeat: int,
        with_10m: bool,
        json: Path | None,
        interactive: bool,
        **options: Any,
    ) -> None:
        verbosity = options["verbosity"]
        try:
            bench_options = benchmark.Options(
                rows=rows, naive_rows=naive_rows, repeat=repeat, with_10m=with_10m
            )
            created = benchmark.prepare_database()
            if created and verbosity:
                self.stderr.write(created)
            if benchmark.has_data():
                self._confirm(interactive)

            def say(message: str) -> None:
                if verbosity:
                    self.stderr.write(message)

            report = benchmark.run(bench_options, say=say)
        except benchmark.BenchmarkError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(benchmark.format_report(report))
        if json is not None:
            benchmark.write_json(report, json)
            if verbosity:
                self.stderr.write(f"Results written to {json}.")

    def _confirm(self, interactive: bool) -> None:
        if not interactive:
            return
        if not sys.stdin.isatty():
            raise CommandError(
                "The tickets table (or the rotation's run history) holds data that the "
                "benchmark would delete. Pass --noinput to go ahead."
            )
        answer = input(
            "The benchmark deletes every ticket and every rotate_ticket_tokens run in this "
            "database. Type 'yes' to continue: "
        )
        if answer.strip().lower() != "yes":
            raise CommandError("Nothing was changed.")

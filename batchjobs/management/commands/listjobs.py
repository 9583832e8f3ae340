from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.core.management.base import CommandError, CommandParser
from django.db import DatabaseError

from batchjobs import registry
from batchjobs.arguments import option
from batchjobs.exceptions import BatchJobError
from batchjobs.listing import Follower, detail_lines, run_summary, short_time
from batchjobs.management.commands._common import BatchCommand, command_error, require_database
from batchjobs.models import JobRun
from batchjobs.options import LIMITS
from batchjobs.progress import format_duration
from batchjobs.retry import explain

if TYPE_CHECKING:
    pass

MAX_RUNS = int(LIMITS["runs"].maximum)
# What the database user needs, said when it lacks a privilege (exit 77).
NEEDS = (
    "SELECT on django_migrations, batchjobs_jobrun, batchjobs_jobslice, "
    "batchjobs_quarantinedrow and batchjobs_effect"
)


class Command(BatchCommand):
    help = "List the registered jobs with the state of their newest run."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "name",
            nargs="?",
            metavar="NAME",
            help="Show this job's recent runs in detail (audit trail included).",
        )
        parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
        parser.add_argument(
            "--follow",
            action="store_true",
            help=(
                "With NAME: redraw the running run's progress line every second, from any "
                "terminal or host, until the run ends; then say how it ended (exit 0). "
                "Read-only. Ctrl-C exits 130."
            ),
        )
        parser.add_argument(
            "--runs",
            type=option("runs"),
            default=5,
            help=f"With NAME: how many recent runs to show (at most {MAX_RUNS:,}).",
        )

    def handle(
        self, *, name: str | None, json: bool, runs: int, follow: bool, **options: Any
    ) -> None:
        if follow and (not name or json):
            raise CommandError("--follow needs a job NAME, and does not go with --json.")
        try:
            jobs = [registry.get(name)] if name else registry.all_jobs()
        except BatchJobError as exc:
            raise command_error(exc) from None
        require_database(needs=NEEDS)
        if follow and name:
            try:
                Follower(name, self.stdout).follow()
            except DatabaseError as exc:
                raise command_error(
                    explain(exc, doing="Could not read the run"), needs=NEEDS
                ) from None
            except KeyboardInterrupt:
                self.stdout.write("")  # leave the live line as it was, and exit quietly
                raise SystemExit(130) from None
            return
        limit = runs if name else 1
        try:
            rows = [
                {
                    "job": job.name,
                    "description": job.description,
                    "runs": [run_summary(r) for r in JobRun.objects.filter(job=job.name)[:limit]],
                }
                for job in jobs
            ]
        except DatabaseError as exc:
            raise command_error(
                explain(exc, doing="Could not read the runs"), needs=NEEDS
            ) from None
        broken = [] if name else registry.broken()
        if json:
            self.stdout.write(_dumps(rows + [_broken_entry(module) for module in broken]))
        elif name:
            self._detail(rows[0])
        else:
            self._table(rows)
            for module in broken:
                self.stdout.write(
                    f"Failed to import {module.module}: {module.error_class}: {module.error} "
                    "(its jobs are not listed).",
                    style_func=self.style.WARNING,
                )

    def _table(self, rows: list[dict[str, Any]]) -> None:
        header = ("JOB", "RUN", "STATE", "DONE/TOTAL", "%", "ETA", "STARTED", "FINISHED")
        lines = [header]
        for row in rows:
            run = row["runs"][0] if row["runs"] else None
            if run is None:
                lines.append((row["job"], "-", "never run", "", "", "", "", ""))
                continue
            total = "?" if run["total"] is None else f"{run['total']:,}"
            state = run["state"] + (
                f" ({run['quarantined']} quarantined)" if run["quarantined"] else ""
            )
            lines.append(
                (
                    row["job"],
                    f"#{run['run_id']}",
                    state,
                    f"{run['done']:,}/{total}",
                    "" if run["percent"] is None else f"{run['percent']:.1f}",
                    format_duration(run["eta_seconds"]) if run["eta_seconds"] is not None else "",
                    short_time(run["started_at"]),
                    short_time(run["finished_at"]),
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        right = {3, 4, 5}
        for line in lines:
            cells = [
                cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                for i, cell in enumerate(line)
            ]
            self.stdout.write("  ".join(cells).rstrip())
        for row in rows:
            self.stdout.write(f"  {row['job']}: {row['description']}")

    def _detail(self, row: dict[str, Any]) -> None:
        self.stdout.write(f"{row['job']}: {row['description']}")
        if not row["runs"]:
            self.stdout.write("  never run")
        for run in row["runs"]:
            self.stdout.write("")
            self.stdout.write(f"Run #{run['run_id']}")
            for label, value in detail_lines(run):
                self.stdout.write(f"  {label:<13} {value}".rstrip())


def _broken_entry(module: registry.BrokenModule) -> dict[str, Any]:
    """A job module that failed to import, in the shape of a job entry ("job" is null), so
    that a script reading "job" and "runs" of every entry does not break on it."""
    return {
        "job": None,
        "module": module.module,
        "error_class": module.error_class,
        "error": module.error,
        "runs": [],
    }


def _dumps(value: object) -> str:
    return json.dumps(value, indent=2, default=str)

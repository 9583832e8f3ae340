from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from django.core.management.base import CommandError, CommandParser

from batchjobs import control, events, registry
from batchjobs.arguments import add_parameters, given_parameters, job_name_in, option
from batchjobs.continuing import as_continued, job_to_run
from batchjobs.coordinator import Coordinator, stop_with_coordinator
from batchjobs.exceptions import BatchJobError, InvalidOption
from batchjobs.job import ResumableJob
from batchjobs.management.commands._common import BatchCommand, command_error, require_database
from batchjobs.options import MAX_ROWS, RunOptions
from batchjobs.progress import format_duration
from batchjobs.rehearsal import rehearse
from batchjobs.retry import hiding
from batchjobs.runner import Runner
from batchjobs.sharing import run_options_from, sharing, start_sliced_run, worker_args
from batchjobs.stopping import Stopper
from batchjobs.worker import SliceWorker

# What the database user needs, said when it lacks a privilege (exit 77).
RUN_NEEDS = (
    "SELECT, INSERT and UPDATE on batchjobs_jobrun, batchjobs_jobslice and "
    "batchjobs_quarantinedrow, SELECT and UPDATE on the job's table, SELECT on "
    "django_migrations, and TEMPORARY on the database"
)
CONTROL_NEEDS = (
    "SELECT on django_migrations, and SELECT and UPDATE on batchjobs_jobrun and batchjobs_jobslice"
)


class _Parser(CommandParser):
    """runjob's parser, which learns NAME's parameters before it parses: they are options
    of their own, listed by ``runjob NAME --help``. From the command line and from
    ``call_command`` alike, everything goes through ``parse_known_args``."""

    _with_parameters = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        if not self._with_parameters:
            self._with_parameters = True
            name = job_name_in(self, [] if args is None else list(args))
            try:
                job_class = registry.get(name) if name else None
            except BatchJobError:
                job_class = None  # handle() says so, in its one line
            if job_class is not None:
                add_parameters(self, job_class)
        return super().parse_known_args(args, namespace)


class Command(BatchCommand):
    help = (
        "Run a resumable batch job, or control its running run. Without options it resumes "
        "the newest unfinished run of NAME from its checkpoint, or starts a new run. "
        "`runjob NAME --help` also lists NAME's parameters."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = _Parser
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", metavar="NAME", help="The job's name (see `listjobs`).")
        run = parser.add_argument_group("running")
        run.add_argument(
            "--batch-size",
            type=option("batch_size"),
            help=f"Fix the chunk size (rows per transaction, 1 to {MAX_ROWS:,}) instead of "
            "adapting it.",
        )
        run.add_argument(
            "--target-chunk-seconds",
            type=option("target_chunk_seconds"),
            help="Adapt the chunk size to take about this long (default 0.5; 0.001 s to 7 days).",
        )
        run.add_argument(
            "--sleep",
            type=option("sleep"),
            help="Pause this long between chunks, to leave the database room (at most 7 days).",
        )
        run.add_argument(
            "--log-format",
            choices=["json", "console"],
            help="Events as JSON lines or a live terminal line (default: console on a "
            "terminal, JSON otherwise).",
        )
        run.add_argument(
            "--max-runtime",
            type=option("max_runtime"),
            help="Stop (as interrupted) after this many seconds (at most 7 days); the next run "
            "resumes.",
        )
        run.add_argument(
            "--statement-timeout",
            type=option("statement_timeout"),
            help="Per-chunk statement_timeout in seconds (PostgreSQL; default 30; 0.001 to "
            "2147483.647).",
        )
        run.add_argument(
            "--lock-timeout",
            type=option("lock_timeout"),
            help="Per-chunk lock_timeout in seconds (PostgreSQL; default 5; 0.001 to 2147483.647).",
        )
        run.add_argument(
            "--max-quarantined",
            type=option("max_quarantined"),
            help=f"Fail the run when more rows than this fail alone (default 10; at most "
            f"{MAX_ROWS:,}).",
        )
        run.add_argument(
            "--sql-side",
            action="store_true",
            help="Let the database make the new values (one ranged UPDATE per chunk), where "
            "the job declares an equivalent expression.",
        )
        run.add_argument(
            "--vacuum",
            action="store_true",
            help="VACUUM ANALYZE the table at the end (PostgreSQL): a rotation rewrites every row.",
        )
        run.add_argument(
            "--reason",
            default="",
            help="Why this run happens (an incident reference); kept in the run's audit trail.",
        )
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--restart",
            action="store_true",
            help="Abandon the unfinished run (recorded as abandoned) and start from the beginning.",
        )
        mode.add_argument("--resume", action="store_true", help="Continue a paused run.")
        mode.add_argument(
            "--retry-quarantined",
            action="store_true",
            help="Process only the rows the newest run set aside.",
        )
        mode.add_argument(
            "--dry-run",
            action="store_true",
            help="Rehearse on a sample of real rows in a transaction that is rolled back.",
        )
        mode.add_argument(
            "--pause",
            action="store_true",
            help="Ask the running run to pause at its next chunk (from another terminal).",
        )
        mode.add_argument(
            "--cancel",
            action="store_true",
            help="Ask the running run to stop for good at its next chunk.",
        )
        mode.add_argument(
            "--tune",
            action="store_true",
            help="Apply --sleep/--batch-size/--target-chunk-seconds to the running run.",
        )
        share = parser.add_argument_group("many workers (PostgreSQL)")
        share.add_argument(
            "--workers",
            type=option("workers"),
            help="Share the run among this many worker processes on this host (1 to 64); "
            "the same command on another host adds its workers to the same run.",
        )
        share.add_argument(
            "--enqueue",
            action="store_true",
            help="With --workers: enqueue that many worker tasks on Django's Tasks framework "
            "and return at once.",
        )
        share.add_argument("--worker-for", type=int, help=argparse.SUPPRESS)
        parser.add_argument(
            "--sample",
            type=option("sample"),
            default=None,
            help=f"Rows to rehearse with --dry-run (default: one chunk; at most {MAX_ROWS:,}).",
        )

    def handle(self, *, name: str, **options: Any) -> None:
        try:
            job_class = registry.get(name)
        except BatchJobError as exc:
            raise command_error(exc) from None
        for module in registry.broken():  # other jobs' trouble: say so, and carry on
            self.stderr.write(
                f"Warning: {module} (its jobs are unavailable).", style_func=self.style.WARNING
            )
        if options["pause"] or options["cancel"] or options["tune"]:
            require_database(needs=CONTROL_NEEDS)
            try:
                self.stderr.write(self._control(name, options))
            except BatchJobError as exc:
                raise command_error(exc, needs=CONTROL_NEEDS) from None
            return
        try:
            job = job_to_run(
                job_class,
                given_parameters(job_class, options),
                restart=options["restart"],
                retry_quarantined=options["retry_quarantined"],
            )
            # The job's table too: after a `migrate --fake` it is missing like ours.
            require_database(models=[job.get_queryset().model], needs=RUN_NEEDS, job=name)
            if options["dry_run"]:
                self._dry_run(
                    as_continued(
                        job,
                        restart=options["restart"],
                        retry_quarantined=options["retry_quarantined"],
                    ),
                    sample=options["sample"] or options["batch_size"] or 1_000,
                    sql_side=options["sql_side"],
                    statement_timeout=options["statement_timeout"],
                    lock_timeout=options["lock_timeout"],
                )
                return
            events.configure(
                log_format=options["log_format"],
                stream=self.stdout,
                verbosity=options["verbosity"],
            )
            run_options = run_options_from(options)
            if options["worker_for"] is not None:
                stopper = Stopper()
                stop_with_coordinator(stopper)
                result = SliceWorker(
                    job, run_options, run_id=options["worker_for"], stopper=stopper
                ).work()
                # Its events said it all, and the coordinator speaks for the run.
                raise SystemExit(result.exit_code)
            workers = sharing(
                job, options["workers"], retry_quarantined=options["retry_quarantined"]
            )
            if options["enqueue"]:
                self.stderr.write(self._enqueue(job, run_options, workers or 0, options))
                return
            if workers:
                outcome = Coordinator(
                    job, run_options, workers=workers, worker_args=worker_args(options)
                ).run()
            else:
                outcome = Runner(job, run_options).run()
        except BatchJobError as exc:
            raise command_error(exc, needs=RUN_NEEDS) from None
        if outcome.exit_code:
            raise CommandError(outcome.message, returncode=outcome.exit_code)
        self.stderr.write(outcome.message, style_func=self.style.SUCCESS)

    def _enqueue(
        self, job: ResumableJob, run_options: RunOptions, workers: int, options: dict[str, Any]
    ) -> str:
        if not workers:
            raise InvalidOption("--enqueue needs --workers N: how many worker tasks to enqueue.")
        # Django's Tasks framework, imported only when it is asked for.
        from batchjobs.enqueue import enqueue_workers  # noqa: PLC0415

        run_id = start_sliced_run(job, run_options, workers=workers)
        return enqueue_workers(
            job_name=job.name, run_id=run_id, workers=workers, argv=worker_args(options)
        )

    def _control(self, name: str, options: dict[str, Any]) -> str:
        if options["tune"]:
            return control.tune(
                name,
                sleep=options["sleep"],
                batch_size=options["batch_size"],
                target_chunk_seconds=options["target_chunk_seconds"],
            )
        return control.request(name, "pause" if options["pause"] else "cancel")

    def _dry_run(
        self,
        job: ResumableJob,
        *,
        sample: int,
        sql_side: bool,
        statement_timeout: float | None,
        lock_timeout: float | None,
    ) -> None:
        with hiding(job.sensitive_values()):  # in the rehearsal's error, as in a run's
            result = rehearse(
                job,
                sample=sample,
                sql_side=sql_side,
                statement_timeout=statement_timeout,
                lock_timeout=lock_timeout,
            )
        out = self.stdout
        out.write(f"Dry run of {job.name} on {result.sample:,} rows (rolled back):")
        if result.capped_at is not None:
            out.write(
                f"  sample capped at {result.capped_at:,} rows, the largest chunk "
                f"(asked for {sample:,}): one transaction must not lock the whole table."
            )
        out.write(
            f"  rows that would change: {result.changed if result.changed is not None else 0:,}"
        )
        out.write(f"  uniqueness or other error: {result.error or 'none'}")
        if job.has_effects():
            out.write(f"  outside effects a run would deliver: {result.effects:,} (none delivered)")
        if result.seconds_per_row is not None:
            out.write(f"  time per row: {result.seconds_per_row * 1e6:,.1f} us")
            out.write(
                f"  projected for {result.total:,} rows: "
                f"{format_duration(result.projected_seconds)} (one worker, no sleep)"
            )
        else:
            out.write("  no rows to rehearse on.")
        if result.error:
            raise CommandError(f"The rehearsal hit an error: {result.error}", returncode=1)

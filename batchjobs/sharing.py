"""Between ``runjob``'s options and the workers that share a run: which runs are shared,
the options a worker is started with, and starting a sliced run for task workers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import connections, router

from batchjobs import events, store
from batchjobs.claim import Claim
from batchjobs.hooks import Hooks, run_info
from batchjobs.job import ResumableJob
from batchjobs.keyset import Keyset, check_queryset
from batchjobs.lease import Owner
from batchjobs.models import JobRun
from batchjobs.options import RunOptions
from batchjobs.worker import check_can_share

# runjob's options that every worker of a run takes from the command that started them.
_PASSED_ON = (
    "batch_size",
    "target_chunk_seconds",
    "sleep",
    "max_runtime",
    "statement_timeout",
    "lock_timeout",
    "max_quarantined",
)
_FLAGS = ("sql_side", "vacuum")


def run_options_from(options: Mapping[str, Any]) -> RunOptions:
    """``RunOptions`` from runjob's parsed options."""
    return RunOptions(
        batch_size=options.get("batch_size"),
        target_chunk_seconds=options.get("target_chunk_seconds"),
        sleep=options.get("sleep") or 0.0,
        restart=bool(options.get("restart")),
        resume=bool(options.get("resume")),
        retry_quarantined=bool(options.get("retry_quarantined")),
        max_runtime=options.get("max_runtime"),
        statement_timeout=options.get("statement_timeout"),
        lock_timeout=options.get("lock_timeout"),
        max_quarantined=options.get("max_quarantined"),
        vacuum=bool(options.get("vacuum")),
        sql_side=bool(options.get("sql_side")),
        reason=options.get("reason") or "",
    )


def worker_args(options: Mapping[str, Any]) -> list[str]:
    """The runjob options a worker process (or task) of this command gets."""
    argv: list[str] = []
    for name in _PASSED_ON:
        if options.get(name) is not None:
            argv += [f"--{name.replace('_', '-')}", f"{options[name]}"]
    argv += [f"--{name.replace('_', '-')}" for name in _FLAGS if options.get(name)]
    return argv


def options_from_argv(job_name: str, argv: Sequence[str]) -> RunOptions:
    """What ``worker_args`` gave, read back by runjob's own parser (a task's arguments)."""
    from batchjobs.management.commands.runjob import Command  # noqa: PLC0415 - it imports us

    parser = Command().create_parser("manage.py", "runjob")
    return run_options_from(vars(parser.parse_args([job_name, *argv])))


def sharing(
    job: ResumableJob, workers: int | None, *, retry_quarantined: bool = False
) -> int | None:
    """How many workers share this run (``None``: one process, the classic run). A sliced
    unfinished run stays sliced: it is continued by workers (one, unless told more). The
    rows a run set aside are retried by one process, whoever did the rest."""
    if retry_quarantined:
        return None
    alias = router.db_for_write(job.get_queryset().model)
    current = store.unfinished(job.name, using=alias)
    if workers is None and (current is None or not current.sliced):
        return None
    workers = workers or 1
    vendor = connections[alias].vendor
    if workers == 1 and vendor != "postgresql" and (current is None or not current.sliced):
        return None  # one worker where there can be only one: the classic run
    check_can_share(job, vendor, workers)
    return workers


def start_sliced_run(job: ResumableJob, options: RunOptions, *, workers: int) -> int:
    """Create (or continue, or join) the sliced run of ``job`` for task workers; its id."""
    queryset = job.get_queryset()
    check_queryset(queryset)
    alias = router.db_for_write(queryset.model)
    check_can_share(job, connections[alias].vendor, workers)
    run, _ = claim_shared(job, options, owner=Owner.current(), alias=alias)
    return run.pk


def claim_shared(
    job: ResumableJob, options: RunOptions, *, owner: Owner, alias: str
) -> tuple[JobRun, bool]:
    """The sliced run of ``job``, created, taken over or joined (``True``: joined, a live
    run's workers are at work). Its ``on_start`` is called by the process that claimed it,
    once per session; the processes that join do not call it again."""
    run = Claim(
        job_name=job.name,
        queryset=job.get_queryset(),
        key=job.key,
        options=options,
        owner=owner,
        alias=alias,
        job=job,
        sliced=True,
    ).run()
    joined = bool(run.stats.get("sessions", [{}])[-1].get("joined"))
    if not joined:
        started(job, run, alias=alias)
    return run, joined


def started(job: ResumableJob, run: JobRun, *, alias: str) -> None:
    keyset = Keyset(job.get_queryset().using(alias), job.key, None)
    info = run_info(run, job=job.name, high_water_mark=keyset.decode(run.high_water_mark))
    Hooks(job=job, run=info, log=events.get_logger(job=job.name, run_id=run.pk)).started()

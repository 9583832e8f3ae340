"""The ways of rotating every token that the benchmark sets side by side.

An approach is a name, the rows it works on in an N-row table, and ``run(rows)``, which
does the work once on the fresh table and says what it measured. The benchmark seeds the
table, reads the WAL and checks that the rows changed around each run; an approach only
does its work and times it. To add one, write a small class with those three, or give
``Runjob`` a name and flags, and add it to ``default_approaches``.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from tests.bench.measure import BenchmarkError, run_child
from tests.bench.report import NAIVE, RUNJOB, RUNJOB_SQL, SINGLE_UPDATE, workers_name
from tests.bench.table import table_name
from tickets.models import Ticket

DEFAULT_JOB = "rotate_ticket_tokens"
NAIVE_BATCH = 5_000


@dataclass(frozen=True)
class Sample:
    """One run of one approach: wall seconds, the peak RSS of its process (``None`` when
    the work happens in the database server), and what the run said of itself."""

    seconds: float
    peak_rss_kib: int | None = None  # with workers: the largest worker's own
    job_seconds: float | None = None  # a runjob's own duration_seconds (job.finished)
    note: str = ""
    coordinator_rss_kib: int | None = None  # with workers: the coordinator's own
    tree_rss_kib: int | None = None  # with workers: exact, the largest of them all (wait4)
    # runjob's own peak as sampled (VmHWM; with workers, the largest worker's), to compare
    # workers with one process on the same instrument.
    sampled_rss_kib: int | None = None
    # CPU time of the command's processes (a runjob's coordinator and workers included).
    cpu_seconds: float | None = None


class Approach(Protocol):
    @property
    def name(self) -> str: ...

    def rows(self, table_rows: int) -> int:
        """The rows it rotates in a table of ``table_rows`` (the first ones by key)."""
        ...

    def run(self, rows: int) -> Sample: ...


@dataclass(frozen=True)
class SingleUpdate:
    """One statement, in this process: the database's own limit for a full rewrite."""

    name: str = SINGLE_UPDATE

    def rows(self, table_rows: int) -> int:
        return table_rows

    def run(self, rows: int) -> Sample:
        with connection.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute(
                f"UPDATE {table_name()} SET token = gen_random_uuid(), token_issued_at = now()"
            )
            seconds = time.perf_counter() - started
            updated = cursor.rowcount
        if updated != rows:
            raise BenchmarkError(f"{self.name} changed {updated:,} rows, not {rows:,}.")
        return Sample(seconds)


@dataclass(frozen=True)
class Runjob:
    """``manage.py runjob JOB`` as an operator runs it: a new process, start-up included.

    It is started with ``--restart``, so that it makes a new run even when an earlier
    benchmark, stopped half-way, left one unfinished (recorded as abandoned): the library's
    tables are never touched here. Its figures come from its JSON events.

    With ``workers``, it is ``runjob JOB --workers N``: a coordinator process and N worker
    processes it starts. Its peak RSS is then sampled per process (``run_child(tree=True)``):
    the largest worker's is the row's figure, the coordinator's is kept beside it.
    """

    name: str = RUNJOB
    job: str = DEFAULT_JOB
    flags: tuple[str, ...] = ()
    workers: int | None = None

    def rows(self, table_rows: int) -> int:
        return table_rows

    def argv(self) -> list[str]:
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        argv = [sys.executable, manage, "runjob", self.job, "--log-format", "json", "--restart"]
        workers = [] if self.workers is None else ["--workers", str(self.workers)]
        return [*argv, *workers, *self.flags]

    def run(self, rows: int) -> Sample:
        # Sampled with or without workers: the goal compares the two on one instrument.
        child = run_child(self.argv(), tree=True)
        started = child.events.get("job.started", {})
        finished = child.events.get("job.finished")
        if child.returncode != 0 or finished is None:
            raise child.failure(self.name)
        state, done, run_id = finished.get("state"), finished.get("done"), finished.get("run_id")
        if started.get("resumed") or state != "succeeded" or done != rows:
            raise BenchmarkError(
                f"{self.name}: run #{run_id} of {self.job} ended {state} with {done} rows done"
                f" (resumed: {started.get('resumed')}), not a new run that rotated {rows:,}."
            )
        seconds, rate = finished.get("duration_seconds"), finished.get("rate")
        note = (
            f"run #{run_id} {state}: {done:,} rows in {seconds:,.2f} s by its own clock, "
            f"{rate or 0:,.0f} rows/s"
        )
        peaks = child.peaks
        if peaks is None:  # run_child was replaced (the unit tests)
            return Sample(child.seconds, child.peak_rss_kib, job_seconds=seconds, note=note)
        if self.workers is None:
            return Sample(
                child.seconds,
                child.peak_rss_kib,
                job_seconds=seconds,
                note=note,
                sampled_rss_kib=peaks.command_kib,
                cpu_seconds=child.cpu_seconds,
            )
        if len(peaks.children_kib) != self.workers or peaks.command_kib is None:
            raise BenchmarkError(
                f"{self.name}: sampled {len(peaks.children_kib)} worker processes and "
                f"{'a' if peaks.command_kib else 'no'} coordinator, not {self.workers} and one: "
                "their peak RSS cannot be told apart."
            )
        return Sample(
            child.seconds,
            max(peaks.children_kib),
            job_seconds=seconds,
            note=f"{note}; coordinator {peaks.command_kib / 1024:.1f} MiB",
            coordinator_rss_kib=peaks.command_kib,
            tree_rss_kib=peaks.tree_kib,
            sampled_rss_kib=max(peaks.children_kib),
            cpu_seconds=child.cpu_seconds,
        )


@dataclass(frozen=True)
class NaiveOrm:
    """The first attempt most of us write (``naive_rotation``), in a new process like
    ``runjob``, on the first ``limit`` rows only: it is about a hundred times slower."""

    limit: int = 100_000
    name: str = NAIVE

    def rows(self, table_rows: int) -> int:
        return min(table_rows, self.limit)

    def run(self, rows: int) -> Sample:
        code = (
            "import django; django.setup(); "
            f"from tests.bench.approaches import naive_rotation; naive_rotation({int(rows)})"
        )
        child = run_child([sys.executable, "-c", code])
        done = child.events.get("naive.finished", {}).get("done")
        if child.returncode != 0 or done != rows:
            raise child.failure(f"{self.name} (after {done} rows)")
        return Sample(child.seconds, child.peak_rss_kib)


def naive_rotation(limit: int, *, batch_size: int = NAIVE_BATCH) -> int:
    """Rotate the first ``limit`` tokens with model instances and ``bulk_update``.

    It does the same work as the job (a new token and its issue time on every row, one
    transaction per batch, keyset order), the way the ORM invites: load whole objects, set
    attributes, ``bulk_update`` (one ``CASE WHEN`` per column, per batch). Prints one JSON
    line with the rows done, for the benchmark to check.
    """
    done, last = 0, 0
    while done < limit:
        with transaction.atomic():
            batch = list(
                Ticket.objects.filter(pk__gt=last).order_by("pk")[: min(batch_size, limit - done)]
            )
            if not batch:
                break
            now = timezone.now()
            for ticket in batch:
                ticket.token = uuid.uuid4()
                ticket.token_issued_at = now
            Ticket.objects.bulk_update(batch, ["token", "token_issued_at"], batch_size=batch_size)
        done += len(batch)
        last = batch[-1].pk
    sys.stdout.write(json.dumps({"event": "naive.finished", "done": done}) + "\n")
    return done


WORKER_COUNTS = (1, 2, 4)


def default_approaches(
    *,
    job: str = DEFAULT_JOB,
    naive_rows: int = 100_000,
    workers: tuple[int, ...] = WORKER_COUNTS,
) -> list[Approach]:
    """The table's rows, in order (the single UPDATE is every ratio's reference): then
    ``runjob --workers N`` for each of ``workers``, with Python tokens and ``--sql-side``."""
    shared: list[Approach] = []
    for n in workers:
        shared.append(Runjob(workers_name(n, sql_side=False), job, workers=n))
        shared.append(Runjob(workers_name(n, sql_side=True), job, ("--sql-side",), workers=n))
    return [
        SingleUpdate(),
        Runjob(RUNJOB, job),
        Runjob(RUNJOB_SQL, job, ("--sql-side",)),
        *shared,
        NaiveOrm(naive_rows),
    ]

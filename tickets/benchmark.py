"""Token rotation measured four ways on one PostgreSQL database, in one invocation.

The reference is the database's own limit: one ``UPDATE`` of every row. Against it: the
``runjob`` command with tokens made in Python, the same with ``--sql-side`` (tokens made by
``gen_random_uuid()``), and what a first attempt usually is (load model instances, set the
field, ``bulk_update``). Each approach starts from a fresh table of the same size (truncate,
seed with ``COPY``, ``VACUUM ANALYZE``, ``CHECKPOINT``), so that none pays for another's
dead rows or dirty pages. The commands run as real subprocesses: their wall time includes
start-up, as an operator would see it, and their peak RSS is the kernel's figure for that
one process (``wait4`` in a small launcher), not an estimate.

It measures; it does not judge. The goals are printed as PASS or MISS and never fail the
command: a figure from a shared two-core machine is evidence, not a test result.

The runs are read through the library's public face only: each ``runjob`` is started with
``--restart`` (a new run, whatever an earlier, interrupted benchmark left unfinished) and
its figures come from its own JSON events (``job.started``, ``job.finished``).

Destructive: every approach empties ``tickets_ticket``. Each runjob leaves one finished run
of the job in its history.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import django
import psycopg2
from django.conf import settings
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from tickets.models import Ticket
from tickets.seeding import seed

JOB = "rotate_ticket_tokens"
NAIVE_BATCH = 5_000
MEMORY_PROBE_ROWS = 100_000
TEN_MILLION = 10_000_000

SINGLE_UPDATE = "single UPDATE"
RUNJOB = "runjob (Python tokens)"
RUNJOB_SQL = "runjob --sql-side"
NAIVE = "naive ORM bulk_update"
MEMORY = "runjob (Python tokens), memory probe"

# The targets the library was built to; printed as PASS/MISS, never enforced.
RUNJOB_MAX_RATIO = 1.5
SQL_SIDE_MAX_RATIO = 1.15
MIN_SPEEDUP_OVER_NAIVE = 10.0
MAX_RSS_MIB = 80.0
MAX_RSS_GROWTH = 1.2


class BenchmarkError(Exception):
    """The benchmark cannot run here, or a measured run did not do its work."""


# -- results --------------------------------------------------------------------------


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

    def add(self, seconds: float, peak_rss_kib: int | None, wal_bytes: int | None) -> None:
        self.seconds.append(seconds)
        if peak_rss_kib is not None:
            self.peak_rss_kib = max(self.peak_rss_kib or 0, peak_rss_kib)
        if wal_bytes is not None:
            self.wal_bytes = min(self.wal_bytes or wal_bytes, wal_bytes)

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
        if runjob and (r := self.ratio(runjob)) is not None:
            out.append(
                Goal(
                    f"runjob (Python tokens) <= {RUNJOB_MAX_RATIO}x single UPDATE",
                    f"{r:.2f}x",
                    r <= RUNJOB_MAX_RATIO,
                )
            )
        if sql_side and (r := self.ratio(sql_side)) is not None:
            out.append(
                Goal(
                    f"runjob --sql-side <= {SQL_SIDE_MAX_RATIO}x single UPDATE",
                    f"{r:.2f}x",
                    r <= SQL_SIDE_MAX_RATIO,
                )
            )
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
        }


# -- formatting -----------------------------------------------------------------------


def format_report(report: Report) -> str:
    """The machine, one aligned table, the memory probes and the goals, as plain text."""
    lines = [f"{k + ':':<12} {v}" for k, v in report.machine.items()]
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
    body = []
    notes = []
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
    lines += [
        "",
        f"Whole benchmark: {report.total_seconds:,.0f} s; load average after: {report.load_after}.",
    ]
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        # The first column reads left to right; the figures line up on the right.
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *map(line, rows)]


# -- the machine ----------------------------------------------------------------------


def describe_machine() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('server_version'), current_setting('shared_buffers'), "
            "current_setting('jit'), current_setting('synchronous_commit'), "
            "current_setting('fsync'), current_setting('max_wal_size')"
        )
        version, shared_buffers, jit, sync_commit, fsync, max_wal = cursor.fetchone()
    s = connection.settings_dict
    return {
        "CPU": f"{_nproc()} cores available ({_cpu_model()})",
        "RAM": _ram(),
        "OS": platform.platform(),
        "PostgreSQL": (
            f"{version} at {s.get('HOST') or 'localhost'}:{s.get('PORT') or 5432}/{s['NAME']} "
            f"(shared_buffers {shared_buffers}, max_wal_size {max_wal}, jit {jit}, "
            f"fsync {fsync}, synchronous_commit {sync_commit})"
        ),
        "Python": f"{platform.python_version()} ({platform.python_implementation()})",
        "Django": f"{django.get_version()}, psycopg2 {psycopg2.__version__.split()[0]}",
        "Load avg": _load(),
    }


def _nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 0


def _cpu_model() -> str:
    for line in _read_lines("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _ram() -> str:
    for line in _read_lines("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def _load() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min)"
    except OSError:
        return "unknown"


def _read_lines(path: str) -> Iterator[str]:
    try:
        with open(path, encoding="utf-8") as f:
            yield from f
    except OSError:
        return


# -- the database ---------------------------------------------------------------------


def prepare_database() -> str:
    """Refuse anything but PostgreSQL; create and migrate the database when it is missing.

    Returns a sentence for the operator when it created the database, else ``""``. An
    existing database with unapplied migrations is refused rather than migrated.
    """
    if connection.vendor != "postgresql":
        raise BenchmarkError(
            f"bench_rotation measures PostgreSQL only; this database is {connection.vendor}. "
            "Run `make bench`, or set DATABASE_URL=postgres://USER@HOST:PORT/DBNAME."
        )
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        raise BenchmarkError(
            "The runjob subprocesses find the database through DATABASE_URL; set it to the "
            "PostgreSQL database this command uses."
        )
    created = _create_database_if_missing()
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending and not created:
        raise BenchmarkError(
            f"The database has {len(pending)} unapplied migrations; "
            "run `python manage.py migrate` first."
        )
    if pending:
        call_command("migrate", interactive=False, verbosity=0)
        return f"Created and migrated the database {connection.settings_dict['NAME']}."
    return ""


def _create_database_if_missing() -> bool:
    s = connection.settings_dict
    params = {
        "dbname": "postgres",
        "user": s.get("USER") or None,
        "password": s.get("PASSWORD") or None,
        "host": s.get("HOST") or None,
        "port": s.get("PORT") or None,
        "connect_timeout": 10,
    }
    try:
        maintenance = psycopg2.connect(**{k: v for k, v in params.items() if v is not None})
    except psycopg2.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BenchmarkError(f"Cannot reach the PostgreSQL server: {first}") from None
    try:
        maintenance.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with maintenance.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [s["NAME"]])
            if cursor.fetchone():
                return False
            cursor.execute(f"CREATE DATABASE {connection.ops.quote_name(s['NAME'])}")
            return True
    finally:
        maintenance.close()


def has_data() -> bool:
    """Whether there are tickets that a benchmark would destroy."""
    return Ticket.objects.exists()


def _table_name() -> str:
    return connection.ops.quote_name(Ticket._meta.db_table)


def fresh_table(rows: int) -> None:
    """``rows`` new tickets in a new table file, analysed, with nothing left to flush.

    ``TRUNCATE`` gives the table and its indexes new files (no dead rows from the last
    approach); the ``CHECKPOINT`` writes the seeding's dirty pages out now, so that the
    timed approach does not pay for them.
    """
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {_table_name()} RESTART IDENTITY")
    seed(rows)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {_table_name()}")
    _checkpoint()


def _checkpoint() -> None:
    # Needs superuser or pg_checkpoint; without it the timings include more write-back.
    with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")


def _wal_lsn() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        return str(cursor.fetchone()[0])


def _wal_bytes_since(lsn: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", [lsn])
        return int(cursor.fetchone()[0])


def empty_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {_table_name()} RESTART IDENTITY")


@dataclass(frozen=True)
class Witness:
    """The tokens of the first and the last row an approach must rotate, read through this
    process's connection before it runs: if they have not changed after it, the approach
    worked on another database (a DATABASE_URL that is not this command's) or not at all."""

    tokens: dict[int, uuid.UUID]

    @classmethod
    def take(cls, rows: int) -> Witness:
        # fresh_table() restarts the identity, so the rows are keys 1..N in order: two index
        # lookups, where finding the N-th key would scan (and warm) the index before the run.
        ends = {1, rows}
        tokens = dict(Ticket.objects.filter(pk__in=ends).values_list("pk", "token"))
        if set(tokens) != ends:
            raise BenchmarkError(f"The table is not fresh: keys {sorted(ends)} are not there.")
        return cls(tokens)

    def check(self, approach: str) -> None:
        now = dict(Ticket.objects.filter(pk__in=self.tokens).values_list("pk", "token"))
        kept = sorted(k for k, token in self.tokens.items() if now.get(k) == token)
        if kept:
            raise BenchmarkError(
                f"{approach} finished, but the rows {kept} of this database still have their "
                "old tokens: is DATABASE_URL the database this command uses?"
            )


# -- the approaches -------------------------------------------------------------------


def time_single_update(rows: int) -> float:
    """One statement, in this process: the database's own limit for a full rewrite."""
    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(
            f"UPDATE {_table_name()} SET token = gen_random_uuid(), token_issued_at = now()"
        )
        seconds = time.perf_counter() - started
        updated = cursor.rowcount
    if updated != rows:
        raise BenchmarkError(f"{SINGLE_UPDATE} changed {updated:,} rows, not {rows:,}.")
    return seconds


@dataclass(frozen=True)
class _ChildRun:
    seconds: float
    peak_rss_kib: int
    returncode: int
    # The last event of each name the command printed (JSON lines): O(1) in the run's length.
    events: dict[str, dict[str, Any]]
    tail: str


# Runs the measured command for us and reports its wall time and peak RSS. Why a launcher:
# Linux carries a process's peak RSS across fork() and exec() (the exec records the old
# image's high-water mark), so a command started straight from this process would report
# at least this process's own peak (the seeding's buffers). Started from this small
# interpreter instead, the inherited figure is the launcher's few MiB, below any command.
_LAUNCHER = """
import json, os, sys, time
result, argv = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
code = os.waitstatus_to_exitcode(status)
with open(result, "w") as f:
    json.dump({"seconds": seconds, "maxrss_kib": usage.ru_maxrss, "returncode": code}, f)
"""


def _run_child(argv: list[str]) -> _ChildRun:
    """Run ``argv`` to its end; its wall time, and the peak RSS of that process alone.

    The figures come from the launcher (above): wall time from fork to reaping, and the
    ``wait4`` resource usage of that one process (``RUSAGE_CHILDREN`` here would give the
    maximum over every child so far). Output goes to a temporary file of which only the
    tail and the last JSON event of each name are kept: O(1) memory here.
    """
    with (
        tempfile.TemporaryFile("w+", encoding="utf-8") as out,
        tempfile.NamedTemporaryFile("r", encoding="utf-8", suffix=".json") as result,
    ):
        launcher = [sys.executable, "-S", "-c", _LAUNCHER, result.name, *argv]
        proc = subprocess.Popen(
            launcher,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=settings.BASE_DIR,
            # The same database (DATABASE_URL) and the same settings as this process.
            env={**os.environ, "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE},
        )
        try:
            proc.wait()
        except BaseException:
            proc.kill()  # the measured command gets the terminal's SIGINT by itself
            proc.wait()
            raise
        figures = json.loads(result.read() or "{}")
        out.seek(0)
        tail: collections.deque[str] = collections.deque(maxlen=15)
        events: dict[str, dict[str, Any]] = {}
        for line in out:
            tail.append(line)
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    events[str(event.get("event"))] = event
    if proc.returncode != 0 or not figures:
        raise BenchmarkError(
            f"The launcher for {argv[:4]} exited with {proc.returncode}; last output:\n"
            + "".join(tail)
        )
    # ru_maxrss is in KiB on Linux (bytes on macOS, where this is not meant to run).
    return _ChildRun(
        figures["seconds"], figures["maxrss_kib"], figures["returncode"], events, "".join(tail)
    )


def time_runjob(rows: int, *, sql_side: bool = False) -> tuple[float, int]:
    """``manage.py runjob`` as an operator runs it: a new process, start-up included."""
    # --restart: a new run even when an earlier benchmark, stopped half-way, left one
    # unfinished (it is recorded as abandoned); the library's tables are never touched here.
    argv = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "runjob", JOB]
    argv += ["--log-format", "json", "--restart", *(["--sql-side"] if sql_side else [])]
    name = RUNJOB_SQL if sql_side else RUNJOB
    witness = Witness.take(rows)
    child = _run_child(argv)
    started = child.events.get("job.started", {})
    finished = child.events.get("job.finished")
    if child.returncode != 0 or finished is None:
        raise BenchmarkError(
            f"{name} exited with {child.returncode}; its last output:\n{child.tail}"
        )
    if started.get("resumed") or finished.get("state") != "succeeded" or finished["done"] != rows:
        raise BenchmarkError(
            f"{name}: run #{finished.get('run_id')} ended {finished.get('state')} with "
            f"{finished.get('done')} rows done (resumed: {started.get('resumed')}), not a new "
            f"run that rotated {rows:,} rows."
        )
    witness.check(name)
    return child.seconds, child.peak_rss_kib


def time_naive(rows: int) -> tuple[float, int]:
    """The first attempt most of us write, in a new process like ``runjob``."""
    code = (
        "import django; django.setup(); "
        f"from tickets.benchmark import naive_rotation; naive_rotation({int(rows)})"
    )
    child = _run_child([sys.executable, "-c", code])
    done = child.events.get("naive.finished", {}).get("done")
    if child.returncode != 0 or done != rows:
        raise BenchmarkError(
            f"{NAIVE} exited with {child.returncode} after {done} rows; its last output:\n"
            f"{child.tail}"
        )
    return child.seconds, child.peak_rss_kib


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


# -- the whole benchmark --------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    rows: int = 1_000_000
    naive_rows: int = 100_000
    repeat: int = 1
    with_10m: bool = False

    def __post_init__(self) -> None:
        if self.rows <= 0 or self.naive_rows <= 0 or self.repeat <= 0:
            raise BenchmarkError("--rows, --naive-rows and --repeat must be greater than zero.")


def run(options: Options, *, say: Callable[[str], None] = lambda _: None) -> Report:
    """Measure every approach ``repeat`` times, interleaved, then the memory probes.

    Interleaving (A B C D, A B C D...) rather than A A B B... spreads a slow minute on a
    shared machine over every approach instead of one.
    """
    began = time.perf_counter()
    report = Report(machine=describe_machine(), options=asdict(options), timed=[], memory=[])
    n, naive_rows = options.rows, min(options.rows, options.naive_rows)
    single = Measurement(SINGLE_UPDATE, n)
    runjob = Measurement(RUNJOB, n)
    sql_side = Measurement(RUNJOB_SQL, n)
    naive = Measurement(NAIVE, naive_rows, scaled_to=n if naive_rows < n else None)
    report.timed = [single, runjob, sql_side, naive]

    def measure(
        m: Measurement, table_rows: int, fn: Callable[[], tuple[float, int | None]]
    ) -> None:
        say(f"{m.approach}: seeding {table_rows:,} rows...")
        fresh_table(table_rows)
        wal_before = _wal_lsn()
        seconds, rss = fn()
        wal = _wal_bytes_since(wal_before)
        m.add(seconds, rss, wal)
        rss_text = "" if rss is None else f", peak RSS {rss / 1024:.1f} MiB"
        say(f"{m.approach}: {m.rows:,} rows in {seconds:,.2f} s{rss_text}")

    try:
        for k in range(options.repeat):
            if options.repeat > 1:
                say(f"-- round {k + 1} of {options.repeat}")
            measure(single, n, lambda: (time_single_update(n), None))
            measure(runjob, n, lambda: time_runjob(n))
            measure(sql_side, n, lambda: time_runjob(n, sql_side=True))
            measure(naive, n, lambda: time_naive(naive_rows))

        sizes = [MEMORY_PROBE_ROWS, n, *([TEN_MILLION] if options.with_10m else [])]
        for size in sorted(set(sizes)):
            probe = Measurement(MEMORY, size)
            if size == n:
                probe.seconds, probe.peak_rss_kib = list(runjob.seconds), runjob.peak_rss_kib
            else:
                measure(probe, size, lambda size=size: time_runjob(size))
            report.memory.append(probe)
    finally:
        say("Emptying the tickets table.")
        with contextlib.suppress(DatabaseError):
            empty_table()
    report.total_seconds = time.perf_counter() - began
    report.load_after = _load()
    return report


def write_json(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")

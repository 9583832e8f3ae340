"""Runs under a live load: ``--eta-under-load``, one ``runjob`` on a fresh table while
pgbench keeps the tickets busy, with every ``job.progress`` event kept for ``eta.py`` to
judge; and ``--latency-under-load``, the load's own latency with no job and during
``runjob --workers N``, for ``latency.py`` to sum up.

The live load is PostgreSQL's own client: 4 clients, together ``LOAD_TPS`` transactions a
second at a fixed rate (``pgbench -R``), each updating a random ticket's title, as an
application would while an operator rotates the tokens. It is stopped when the run ends.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db import connection

from tests.bench.approaches import Runjob
from tests.bench.eta import EtaResult, Point
from tests.bench.latency import LatencyRun, Transaction, read_pgbench_log
from tests.bench.machine import busy_share, cpu_times, load_1min
from tests.bench.measure import BenchmarkError, checkpoints, run_child, wal_bytes_since, wal_lsn
from tests.bench.report import workers_name
from tests.bench.table import fresh_table, table_name

LOAD_CLIENTS = 4
LOAD_TPS = 200
LOAD = (
    f"pgbench updates random tickets' titles ({LOAD_CLIENTS} clients, "
    f"{LOAD_TPS} transactions/s in all)"
)
# --latency-under-load: pgbench connects and settles, then runs alone for the "no job"
# window, then the run starts; pgbench is stopped LINGER_SECONDS after the run ends.
WARM_UP_SECONDS = 2.0
NO_JOB_SECONDS = 8.0
LINGER_SECONDS = 2.0

_SCRIPT = """\\set id random(1, {rows})
UPDATE {table} SET title = 'pgbench ' || :id WHERE id = :id;
"""


def pgbench_binary() -> str:
    found = shutil.which("pgbench") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), reverse=True)), None
    )
    if found is None:
        raise BenchmarkError(
            "--eta-under-load needs pgbench (PostgreSQL's client tools) on PATH; "
            "install it or pass --no-eta-under-load."
        )
    return found


def measure_eta_under_load(
    rows: int, *, job: str, say: Callable[[str], None] = lambda _: None
) -> EtaResult:
    say(f"ETA under load: seeding {rows:,} rows...")
    fresh_table(rows)
    result = EtaResult(rows=rows, load=LOAD)

    def on_event(event: dict[str, Any]) -> None:
        if event.get("event") == "job.progress":
            result.points.append(Point.from_event(event))

    with tempfile.NamedTemporaryFile("w", suffix=".sql", encoding="utf-8") as script:
        script.write(_SCRIPT.format(rows=rows, table=table_name()))
        script.flush()
        result.load_before, cpu_before, checkpoints_before = load_1min(), cpu_times(), checkpoints()
        load = start_pgbench(script.name)
        try:
            say(f"ETA under load: runjob {job} with pgbench running...")
            child = run_child(Runjob(job=job).argv(), on_event=on_event)
            result.load_after, result.cpu_busy = load_1min(), busy_share(cpu_before, cpu_times())
            if checkpoints_before is not None and (after := checkpoints()) is not None:
                result.checkpoints = after - checkpoints_before
        finally:
            err = stop_pgbench(load)
    finished = child.events.get("job.finished")
    if child.returncode != 0 or finished is None or finished.get("done") != rows:
        raise child.failure("runjob under load")
    if load.returncode not in (0, -signal.SIGINT, 2) and not result.points:
        raise BenchmarkError(f"pgbench failed: {err.strip()[-500:]}")
    result.finished_seconds = finished.get("duration_seconds")
    return result


def measure_latency_under_load(
    rows: int,
    *,
    job: str,
    workers: Sequence[int] = (1, 2),
    say: Callable[[str], None] = lambda _: None,
) -> list[LatencyRun]:
    """For each of ``workers``: a fresh table, pgbench started with ``--log``, a window with
    no job, then ``runjob JOB --workers N`` (Python tokens); the load's latency and the WAL
    in each window.

    The "no job" window comes right before each run, on the same table, from the same
    pgbench: a neighbour's burst on a shared machine is then as likely in one as in the
    other. pgbench has no graceful stop: a SIGINT ends it with its last few KiB of log
    unwritten (stdio buffering), so it is stopped ``LINGER_SECONDS`` after the run ends, and
    its log must reach past the run's end, or the measurement is refused.
    """
    out: list[LatencyRun] = []
    for n in workers:
        name = workers_name(n, sql_side=False)
        say(f"Latency under load, {name}: seeding {rows:,} rows...")
        fresh_table(rows)
        with (
            tempfile.TemporaryDirectory(prefix="bench-pgbench-") as logs,
            tempfile.NamedTemporaryFile("w", suffix=".sql", encoding="utf-8") as script,
        ):
            script.write(_SCRIPT.format(rows=rows, table=table_name()))
            script.flush()
            load = start_pgbench(script.name, log_prefix=str(Path(logs) / "pgbench"))
            try:
                time.sleep(WARM_UP_SECONDS)
                lsn, quiet_from = wal_lsn(), time.time()
                time.sleep(NO_JOB_SECONDS)
                quiet_to, quiet_wal = time.time(), wal_bytes_since(lsn)
                say(f"Latency under load: {name} with pgbench running...")
                lsn = wal_lsn()
                child = run_child(Runjob(name, job, workers=n).argv(), tree=True)
                wal = wal_bytes_since(lsn)
                time.sleep(LINGER_SECONDS)
            finally:
                err = stop_pgbench(load)
            transactions = _read_logs(logs)
        finished, started = child.events.get("job.finished"), child.events.get("job.started")
        if child.returncode != 0 or finished is None or started is None:
            raise child.failure(f"{name} under load")
        if finished.get("done") != rows:
            raise BenchmarkError(f"{name} under load rotated {finished.get('done')} of {rows:,}.")
        if not transactions:
            raise BenchmarkError(f"pgbench logged no transaction: {err.strip()[-500:]}")
        begin, end = _unix(started["timestamp"]), _unix(finished["timestamp"])
        last = max(t.end for t in transactions)
        if last < end:
            raise BenchmarkError(
                f"pgbench's log stops {end - last:.1f} s before the end of {name}'s run: "
                "the latency of its last seconds is unknown."
            )
        quiet = LatencyRun.of(
            f"no job, before --workers {n}", transactions, quiet_from, quiet_to, wal_bytes=quiet_wal
        )
        busy = LatencyRun.of(name, transactions, begin, end, wal_bytes=wal, rows=rows)
        out += [quiet, busy]
        say(f"Latency under load, {name}: p99 {busy.p99_ms:.1f} ms ({quiet.p99_ms:.1f} without)")
    return out


def _read_logs(directory: str) -> list[Transaction]:
    transactions: list[Transaction] = []
    for path in sorted(Path(directory).glob("pgbench*")):
        with path.open(encoding="ascii", errors="replace") as f:
            transactions += read_pgbench_log(f)
    return transactions


def _unix(timestamp: str) -> float:
    """An event's ``timestamp`` (ISO 8601, UTC) as Unix time, pgbench's log's clock."""
    return datetime.fromisoformat(timestamp).timestamp()


def stop_pgbench(load: subprocess.Popen[str]) -> str:
    """Stop pgbench (it has no graceful stop; see above); its standard error."""
    load.send_signal(signal.SIGINT)
    try:
        _, err = load.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        load.kill()
        _, err = load.communicate()
    return err


def start_pgbench(script: str, *, log_prefix: str | None = None) -> subprocess.Popen[str]:
    """pgbench with the live load, for up to 10 minutes; ``log_prefix``: with a line per
    transaction in ``log_prefix.PID`` (``--log``)."""
    s = connection.settings_dict
    env = {**os.environ, "PGPASSWORD": str(s.get("PASSWORD") or "")}
    argv = [pgbench_binary(), "-n", "-c", str(LOAD_CLIENTS), "-R", str(LOAD_TPS)]
    if log_prefix is not None:
        argv += ["--log", f"--log-prefix={log_prefix}"]
    argv += ["-T", "600", "-f", script, "-h", str(s.get("HOST") or "127.0.0.1")]
    argv += ["-p", str(s.get("PORT") or 5432), "-U", str(s.get("USER") or "postgres")]
    argv += [str(s["NAME"])]
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )

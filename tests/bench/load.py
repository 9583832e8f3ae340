"""``--eta-under-load``: one ``runjob`` on a fresh table while pgbench keeps the tickets
busy, with every ``job.progress`` event kept for ``eta.py`` to judge.

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
from collections.abc import Callable
from typing import Any

from django.db import connection

from tests.bench.approaches import Runjob
from tests.bench.eta import EtaResult, Point
from tests.bench.machine import busy_share, cpu_times, load_1min
from tests.bench.measure import BenchmarkError, checkpoints, run_child
from tests.bench.table import fresh_table, table_name

LOAD_CLIENTS = 4
LOAD_TPS = 200

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
    result = EtaResult(
        rows=rows,
        load=f"pgbench updates random tickets' titles ({LOAD_CLIENTS} clients, "
        f"{LOAD_TPS} transactions/s in all)",
    )

    def on_event(event: dict[str, Any]) -> None:
        if event.get("event") == "job.progress":
            result.points.append(Point.from_event(event))

    with tempfile.NamedTemporaryFile("w", suffix=".sql", encoding="utf-8") as script:
        script.write(_SCRIPT.format(rows=rows, table=table_name()))
        script.flush()
        result.load_before, cpu_before, checkpoints_before = load_1min(), cpu_times(), checkpoints()
        load = _start_pgbench(script.name)
        try:
            say(f"ETA under load: runjob {job} with pgbench running...")
            child = run_child(Runjob(job=job).argv(), on_event=on_event)
            result.load_after, result.cpu_busy = load_1min(), busy_share(cpu_before, cpu_times())
            if checkpoints_before is not None and (after := checkpoints()) is not None:
                result.checkpoints = after - checkpoints_before
        finally:
            load.send_signal(signal.SIGINT)
            try:
                _, err = load.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                load.kill()
                _, err = load.communicate()
    finished = child.events.get("job.finished")
    if child.returncode != 0 or finished is None or finished.get("done") != rows:
        raise child.failure("runjob under load")
    if load.returncode not in (0, -signal.SIGINT, 2) and not result.points:
        raise BenchmarkError(f"pgbench failed: {err.strip()[-500:]}")
    result.finished_seconds = finished.get("duration_seconds")
    return result


def _start_pgbench(script: str) -> subprocess.Popen[str]:
    s = connection.settings_dict
    env = {**os.environ, "PGPASSWORD": str(s.get("PASSWORD") or "")}
    argv = [pgbench_binary(), "-n", "-c", str(LOAD_CLIENTS), "-R", str(LOAD_TPS)]
    argv += ["-T", "600", "-f", script, "-h", str(s.get("HOST") or "127.0.0.1")]
    argv += ["-p", str(s.get("PORT") or 5432), "-U", str(s.get("USER") or "postgres")]
    argv += [str(s["NAME"])]
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )

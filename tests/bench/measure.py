"""Measuring one command in a process of its own: wall time, peak RSS, the JSON events it
printed; and the WAL the server wrote meanwhile."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction


class BenchmarkError(Exception):
    """The benchmark cannot run here, or a measured run did not do its work."""


@dataclass(frozen=True)
class ChildRun:
    seconds: float  # wall time from fork to reaping: start-up included, as an operator sees it
    peak_rss_kib: int
    returncode: int
    # The last event of each name the command printed as a JSON line (``job.started``,
    # ``job.finished``...): O(1) memory however long the run.
    events: dict[str, dict[str, Any]]
    tail: str  # its last lines of output, for an error message

    def failure(self, what: str) -> BenchmarkError:
        return BenchmarkError(
            f"{what} exited with {self.returncode}; its last output:\n{self.tail}"
        )


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


def run_child(
    argv: list[str], *, on_event: Callable[[dict[str, Any]], None] | None = None
) -> ChildRun:
    """Run ``argv`` to its end; its wall time, its events, and the peak RSS of that process.

    The figures come from the launcher (above): wall time from fork to reaping, and the
    ``wait4`` resource usage of that one process (``RUSAGE_CHILDREN`` here would give the
    maximum over every child so far). Output goes to a temporary file, read back once the
    command has ended; ``on_event`` sees every JSON event in order (e.g. every
    ``job.progress``, with its timestamp), for a measurement that needs more than the last.
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
        events, tail = read_events(out, on_event=on_event)
    if proc.returncode != 0 or not figures:
        raise BenchmarkError(
            f"The launcher for {argv[:4]} exited with {proc.returncode}; last output:\n{tail}"
        )
    # ru_maxrss is in KiB on Linux (bytes on macOS, where this is not meant to run).
    return ChildRun(figures["seconds"], figures["maxrss_kib"], figures["returncode"], events, tail)


def read_events(
    lines: Iterable[str],
    *,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    keep: int = 15,
) -> tuple[dict[str, dict[str, Any]], str]:
    """The last event of each name among ``lines`` (JSON objects with an ``event`` key;
    other lines are ignored), and the last ``keep`` lines as they were."""
    tail: collections.deque[str] = collections.deque(maxlen=keep)
    events: dict[str, dict[str, Any]] = {}
    for line in lines:
        tail.append(line)
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and isinstance(event.get("event"), str):
            events[event["event"]] = event
            if on_event is not None:
                on_event(event)
    return events, "".join(tail)


def wal_lsn() -> str:
    """The server's current WAL position, to measure what a run writes (cluster-wide)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        return str(cursor.fetchone()[0])


def checkpoints() -> int | None:
    """Checkpoints the server has started so far (timed, requested by WAL volume or by a
    ``CHECKPOINT``), cluster-wide: one during a run makes its later chunks write whole pages
    to the WAL again, and slows them. None when the statistics cannot be read."""
    queries = (
        "SELECT num_timed + num_requested FROM pg_stat_checkpointer",  # PostgreSQL 17+
        "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter",
    )
    for sql in queries:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql)
                return int(cursor.fetchone()[0])
        except DatabaseError:
            continue
    return None


def wal_bytes_since(lsn: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", [lsn])
        return int(cursor.fetchone()[0])

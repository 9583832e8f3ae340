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
    peaks: TreePeaks | None = None  # run_child(tree=True): the command's and its children's
    # CPU time (user + system) of the command and of every child it reaped (its workers).
    cpu_seconds: float | None = None

    def failure(self, what: str) -> BenchmarkError:
        return BenchmarkError(
            f"{what} exited with {self.returncode}; its last output:\n{self.tail}"
        )


# Runs the measured command for us and reports its wall time and peak RSS. Why a launcher:
# Linux carries a process's peak RSS across fork() and exec() (the exec records the old
# image's high-water mark), so a command started straight from this process would report
# at least this process's own peak (the seeding's buffers). Started from this small
# interpreter instead, the inherited figure is the launcher's few MiB, below any command.
#
# With ``tree`` (argv[2] == "1") it also samples, every POLL seconds, the VmHWM of the
# command and of each of its children (``runjob --workers N``: the coordinator and its N
# workers). VmHWM is the high-water mark of the process's own memory since its exec, so a
# sample is its peak so far, and nothing is inherited: a worker's ru_maxrss would include
# the coordinator's RSS at the moment it was forked. The one thing sampling can miss is
# what a process adds in its last POLL seconds; the exact figure for the whole tree (wait4's
# usage is the command's and that of every child it reaped) is kept beside it to check.
_LAUNCHER = """
import json, os, sys, time
POLL, RESCAN = 0.05, 0.5
result, tree, argv = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execv(argv[0], argv)
    finally:
        os._exit(127)

def hwm(p):
    try:
        with open(f"/proc/{p}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None

def children(parent):
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2:].split()
            if len(fields) > 1 and int(fields[1]) == parent:
                found.append(int(name))
    return found

peaks, watched, scanned = {}, [pid], 0.0
while True:
    done, status, usage = os.wait4(pid, 0 if not tree else os.WNOHANG)
    if done:
        break
    now = time.perf_counter()
    if now - scanned >= RESCAN:
        scanned = now
        watched = [pid] + [c for c in children(pid) if c not in watched] + watched[1:]
    for p in watched:
        kib = hwm(p)
        if kib is not None and kib > peaks.get(p, 0):
            peaks[p] = kib
    time.sleep(POLL)
seconds = time.perf_counter() - started
code = os.waitstatus_to_exitcode(status)
with open(result, "w") as f:
    figures = {"seconds": seconds, "maxrss_kib": usage.ru_maxrss, "returncode": code}
    figures["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    json.dump({**figures, "pid": pid, "hwm_kib": {str(k): v for k, v in peaks.items()}}, f)
"""


@dataclass(frozen=True)
class TreePeaks:
    """Peak RSS of a command and of the processes it started (``runjob --workers N``)."""

    command_kib: int | None  # the command's own (the coordinator), sampled
    children_kib: tuple[int, ...]  # each child's own (the workers), sampled, in no order
    tree_kib: int  # exact: the largest of the command and every child it reaped (wait4)

    @classmethod
    def from_figures(cls, pid: int, hwm_kib: dict[str, int], tree_kib: int) -> TreePeaks:
        own = hwm_kib.get(str(pid))
        children = tuple(v for k, v in hwm_kib.items() if k != str(pid))
        return cls(own, children, tree_kib)

    @property
    def sampled_max_kib(self) -> int:
        return max([self.command_kib or 0, *self.children_kib])

    @property
    def missed_kib(self) -> int:
        """How far the exact figure is above every sampled one: memory that a process took
        in its last moments, between two samples, or that a child inherited at its fork
        (a worker's ru_maxrss counts the coordinator's RSS when it was forked)."""
        return max(0, self.tree_kib - self.sampled_max_kib)


def run_child(
    argv: list[str],
    *,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    tree: bool = False,
) -> ChildRun:
    """Run ``argv`` to its end; its wall time, its events, and the peak RSS of that process.

    The figures come from the launcher (above): wall time from fork to reaping, and the
    ``wait4`` resource usage of that process (on Linux it includes every child it reaped,
    so for a command without children it is that process's own). ``tree``: also sample
    the peak of the command and of each of its children (``ChildRun.peaks``). Output goes
    to a temporary file, read back once the command has ended; ``on_event`` sees every
    JSON event in order (e.g. every ``job.progress``, with its timestamp), for a
    measurement that needs more than the last.
    """
    with (
        tempfile.TemporaryFile("w+", encoding="utf-8") as out,
        tempfile.NamedTemporaryFile("r", encoding="utf-8", suffix=".json") as result,
    ):
        flag = "1" if tree else "0"
        launcher = [sys.executable, "-S", "-c", _LAUNCHER, result.name, flag, *argv]
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
    peaks = (
        TreePeaks.from_figures(figures["pid"], figures["hwm_kib"], figures["maxrss_kib"])
        if tree
        else None
    )
    # ru_maxrss is in KiB on Linux (bytes on macOS, where this is not meant to run).
    return ChildRun(
        figures["seconds"],
        figures["maxrss_kib"],
        figures["returncode"],
        events,
        tail,
        peaks,
        figures.get("cpu_seconds"),
    )


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

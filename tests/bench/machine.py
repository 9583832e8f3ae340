"""What the figures were measured on: CPU, memory, OS, the server's settings, the load."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator

import django
import psycopg2
from django.db import connection


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
        "Load avg": load_average(),
    }


def load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min)"
    except OSError:
        return "unknown"


def load_1min() -> str:
    """The 1-minute load average: runnable processes, for a run of seconds to a minute."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def cpu_times() -> tuple[int, int] | None:
    """(all, idle) CPU time of the whole machine so far, in clock ticks; None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(ticks), ticks[3] + ticks[4]  # idle and iowait


def busy_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of the machine's CPU time that was busy between two ``cpu_times``."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    return 1 - (after[1] - before[1]) / (after[0] - before[0])


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


def _read_lines(path: str) -> Iterator[str]:
    try:
        with open(path, encoding="utf-8") as f:
            yield from f
    except OSError:
        return

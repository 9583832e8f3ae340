"""Who owns a run. One run of a job at a time is guarded by a lease on its ``JobRun`` row.

The lease is a compare-and-swap on ``owner_token`` plus a heartbeat, not an advisory lock:
session advisory locks do not survive PgBouncer's transaction pooling and do not exist on
SQLite, while a row works on every backend and through any pooler. Every chunk fences its
commit on the token, so a process that lost its lease can never move the checkpoint.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connections

from batchjobs import conf
from batchjobs.database import now as database_now

if TYPE_CHECKING:
    from batchjobs.models import JobRun


@dataclass(frozen=True)
class Owner:
    token: str
    host: str
    pid: int

    @classmethod
    def current(cls) -> Owner:
        return cls(token=uuid.uuid4().hex, host=socket.gethostname(), pid=os.getpid())


def pid_alive(pid: int) -> bool:
    """Is a process with this pid running here? A zombie (killed, not yet reaped by its
    parent) answers ``kill(pid, 0)`` but is dead: it can never write again."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # "pid (comm) S ...": the state follows the last ')' (comm may hold one).
            return stat.read().rpartition(b")")[2].split()[0] in {b"Z", b"X"}
    except (OSError, IndexError):
        return False  # no /proc (macOS): the heartbeat decides


def owner_alive(
    *,
    owner_token: str,
    owner_host: str,
    owner_pid: int | None,
    heartbeat_at: datetime | None,
    now: datetime,
    stale_after: timedelta,
    claimant_pid: int | None = None,
) -> bool:
    """Is the recorded owner still working? On this host a dead pid settles it at once;
    elsewhere (or for a live pid, which may have been reused) the heartbeat must be fresh."""
    if not owner_token:
        return False
    # The claimant's own pid under another token is a previous process that had it (a
    # restarted container is pid 1 again): it is gone.
    here = owner_host == socket.gethostname()
    if here and owner_pid and (owner_pid == claimant_pid or not pid_alive(owner_pid)):
        return False
    return heartbeat_at is not None and now - heartbeat_at < stale_after


def lost_lease_message(job: str, run_id: int, run: JobRun | None, owner: Owner) -> str:
    """Say what became of a run its process no longer owns, from the run row as it is now
    (``None``: deleted). The process wrote nothing after it lost the lease: every chunk and
    heartbeat is fenced on the owner."""
    me = f"this process (pid {owner.pid})"
    tail = f"{me} wrote nothing after that and stops. See `listjobs {job}`."
    if run is None:
        return f"Run #{run_id} of {job} was deleted while {me} worked on it; {tail}"
    ended = (run.stats or {}).get("ended_by") or {}
    who = (
        f" by {ended.get('by', '?')} (pid {ended.get('pid', '?')} on {ended.get('host', '?')})"
        if ended
        else ""
    )
    if run.state == "abandoned":
        how = f"abandoned{who} with `runjob {job} --restart`"
    elif run.state == "running" and run.owner_token:
        how = f"taken over by pid {run.owner_pid} on {run.owner_host}"
    else:
        how = f"{run.state}{who}"
    return (
        f"Run #{run_id} of {job} was {how} while {me} was not heard from (its heartbeat "
        f"went stale: frozen, suspended or cut off); {tail}"
    )


def ended_by(action: str, owner: Owner, user: str) -> dict[str, Any]:
    """Who ended or took a run from its process, for the audit trail and the old owner."""
    return {"action": action, "by": user, "host": owner.host, "pid": owner.pid}


def run_owner_alive(run: JobRun, *, alias: str = "default", claiming: bool = False) -> bool:
    """Is the process recorded on the run row itself at work? (A sliced run's row has an
    owner only while one of its workers records the run's end.)"""
    return bool(run.owner_token) and owner_alive(
        owner_token=run.owner_token,
        owner_host=run.owner_host,
        owner_pid=run.owner_pid,
        heartbeat_at=run.heartbeat_at,
        now=database_now(connections[alias]),
        claimant_pid=os.getpid() if claiming else None,
        stale_after=timedelta(seconds=conf.get().STALE_AFTER_SECONDS),
    )


def alive(run: JobRun, *, alias: str = "default", claiming: bool = False) -> bool:
    """Is the process that owns ``run`` (or, for a sliced run, any of its workers) still at
    work? (Judged on the database's clock.)
    ``claiming``: asked by a process that wants the run, whose own pid cannot be the owner."""
    if run_owner_alive(run, alias=alias, claiming=claiming):
        return True
    if run.sliced and run.state == "running":
        # A sliced run lives while any of its workers does, whoever started it.
        from batchjobs.slice_store import live_owners  # noqa: PLC0415 - it imports this module

        return bool(live_owners(run.pk, using=alias))
    return False

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from batchjobs.lease import Owner, owner_alive, pid_alive

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
STALE_AFTER = timedelta(seconds=120)
HERE = socket.gethostname()


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_owner__is_this_process_with_a_fresh_token() -> None:
    first, second = Owner.current(), Owner.current()
    assert (first.host, first.pid) == (HERE, os.getpid())
    assert len(first.token) == 32 and int(first.token, 16) >= 0
    assert first.token != second.token


def test_pid_alive__this_process_is_alive() -> None:
    assert pid_alive(os.getpid())


def test_pid_alive__a_reaped_child_is_dead(dead_pid: int) -> None:
    assert not pid_alive(dead_pid)


def test_pid_alive__a_zombie_is_dead() -> None:
    """Killed but not reaped: ``kill(pid, 0)`` still succeeds, yet it can never write."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while _state(child.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _state(child.pid) == "Z"
        os.kill(child.pid, 0)  # the zombie still answers a signal-0 probe...
        assert not pid_alive(child.pid)  # ...and is dead all the same
    finally:
        child.wait()


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()[0]


def test_pid_alive__a_process_of_another_user_counts_as_alive() -> None:
    assert pid_alive(1)  # init: PermissionError for a normal user, alive for root


def _alive(**overrides) -> bool:
    fields = {
        "owner_token": "abc",
        "owner_host": HERE,
        "owner_pid": os.getpid(),
        "heartbeat_at": NOW - timedelta(seconds=5),
        "now": NOW,
        "stale_after": STALE_AFTER,
    }
    return owner_alive(**{**fields, **overrides})


def test_owner_alive__live_local_process_with_a_fresh_heartbeat() -> None:
    assert _alive()


def test_owner_alive__no_token_means_no_owner() -> None:
    assert not _alive(owner_token="")


def test_owner_alive__dead_local_pid_settles_it_despite_a_fresh_heartbeat(dead_pid: int) -> None:
    assert not _alive(owner_pid=dead_pid)


def test_owner_alive__stale_heartbeat_means_gone_even_if_the_pid_lives() -> None:
    assert not _alive(heartbeat_at=NOW - STALE_AFTER)
    assert _alive(heartbeat_at=NOW - STALE_AFTER + timedelta(seconds=1))


def test_owner_alive__no_heartbeat_means_gone() -> None:
    assert not _alive(heartbeat_at=None)


def test_owner_alive__another_host_is_judged_by_the_heartbeat_only(dead_pid: int) -> None:
    assert _alive(owner_host="elsewhere.example", owner_pid=dead_pid)
    assert not _alive(owner_host="elsewhere.example", heartbeat_at=NOW - timedelta(hours=1))


def test_owner_alive__the_claimants_own_pid_under_another_token_is_a_gone_process() -> None:
    """A restarted container is pid 1 again: the run's owner pid is then the claimant's."""
    fresh = {
        "owner_token": "previous-process",
        "owner_host": socket.gethostname(),
        "owner_pid": os.getpid(),
        "heartbeat_at": NOW,
        "now": NOW,
        "stale_after": timedelta(seconds=120),
    }
    assert owner_alive(**fresh)  # seen from another process: this pid is alive
    assert not owner_alive(**fresh, claimant_pid=os.getpid())

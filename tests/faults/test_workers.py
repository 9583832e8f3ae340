"""Many workers on one run (``runjob NAME --workers N``), with real processes: hosts that
die, a worker frozen past its lease, operator controls across workers, uneven keys. Every
row present at the start must be rotated exactly once, as the database-side audit counts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction

from batchjobs.exit_codes import ExitCode
from batchjobs.models import JobRun, JobSlice, State
from tests.conftest import wait_for
from tests.faults.helpers import (
    SLOW,
    Live,
    assert_rotated_exactly_once,
    latest_run,
    snapshot,
    wait_done,
)

# Many workers need PostgreSQL (SQLite has one writer): the "postgres" marker skips these,
# saying where they run, on SQLite.
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SHORT_LEASE = {"DJANGO_SETTINGS_MODULE": "tests.faults.settings_short_lease"}


def _workers(cli: Any, procs: Any, n: int, *extra: str, env: dict[str, str] | None = None) -> Live:
    return procs.spawn(
        cli, "runjob", SLOW, "--workers", str(n), "--batch-size", "100", "--log-format",
        "json", *extra, env=env,
    )  # fmt: skip


def _children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (its workers), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            fields = (entry / "stat").read_bytes().rpartition(b")")[2].split()
            if int(fields[1]) == pid and fields[0] not in (b"Z", b"X"):
                found.append(int(entry.name))
    return found


def _started_workers(group: Live, n: int) -> list[int]:
    return wait_for(lambda: len(pids := _children(group.pid)) == n and pids, timeout=30)


def _slice_row_free(slice_id: int) -> bool:
    from django.db import OperationalError  # noqa: PLC0415

    try:
        with transaction.atomic():
            JobSlice.objects.select_for_update(nowait=True).filter(pk=slice_id).exists()
        return True
    except OperationalError:
        return False


def test_two_hosts__one_killed_with_9__the_other_finishes_every_row_once(
    seed, cli, rotation_audit, procs
) -> None:
    seed(20_000)
    before = snapshot()
    # Slow enough chunks that the second host arrives with plenty of work left to split.
    first = _workers(cli, procs, 2, env={"SCENARIO_CHUNK_SLEEP": "0.05"})
    first_workers = _started_workers(first, 2)
    run = wait_done(SLOW, 1_000, first)
    # The same command on a "second host" joins the run rather than being refused.
    second = _workers(cli, procs, 2, env={"SCENARIO_CHUNK_SLEEP": "0.05"})
    started = second.wait_event("job.started")
    assert started["joined"] is True and started["run_id"] == run.pk
    wait_for(lambda: len(second.events("slice.claimed")) == 2, timeout=30)
    # The first host dies: its coordinator and both workers, at once, with SIGKILL.
    for pid in [first.pid, *first_workers]:
        os.kill(pid, signal.SIGKILL)
    first.wait(timeout=10)
    wait_for(lambda: all(_gone(pid) for pid in first_workers), timeout=10)

    assert second.wait(timeout=120) == 0, second.stderr
    run = JobRun.objects.get(pk=run.pk)
    assert run.state == State.SUCCEEDED
    assert run.done == len(before)
    assert_rotated_exactly_once(rotation_audit, before)
    # The dead host's slices were taken over by the live one.
    owners = set(JobSlice.objects.filter(run=run).values_list("owner_token", flat=True))
    assert owners == {""}, "a finished run's slices have no owner"
    assert "succeeded" in second.stderr


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return stat.rpartition(b")")[2].split()[0] in (b"Z", b"X")


def test_a_worker_frozen_past_its_lease_loses_its_slice_and_writes_nothing_after(
    seed, cli, rotation_audit, procs, settings
) -> None:
    settings.BATCHJOBS_STALE_AFTER_SECONDS = 3.0
    seed(4_000)
    before = snapshot()
    group = _workers(
        cli, procs, 2, "--sleep", "0.2", env={**SHORT_LEASE, "SCENARIO_CHUNK_SLEEP": "0.01"}
    )
    workers = _started_workers(group, 2)
    wait_done(SLOW, 400, group)
    piece = wait_for(
        lambda: JobSlice.objects.filter(owner_pid=workers[0], finished_at__isnull=True).first(),
        timeout=30,
    )
    # Frozen between two chunks (holding no lock), as a stray Ctrl-Z or a VM pause would.
    for _ in range(100):
        os.kill(workers[0], signal.SIGSTOP)
        time.sleep(0.05)
        if _slice_row_free(piece.pk):
            break
        os.kill(workers[0], signal.SIGCONT)
        time.sleep(0.03)
    else:
        raise AssertionError("could not catch the worker between two chunks")
    try:
        taken = wait_for(
            lambda: (
                (p := JobSlice.objects.get(pk=piece.pk)).owner_pid not in (workers[0], None)
                and p.owner_token
                and p
            ),
            timeout=60,
        )
        assert taken.owner_pid == workers[1]
        wait_for(lambda: JobSlice.objects.get(pk=piece.pk).done > taken.done, timeout=30)
    finally:
        os.kill(workers[0], signal.SIGCONT)
    assert group.wait(timeout=120) == 0, group.stderr
    assert_rotated_exactly_once(rotation_audit, before)
    lost = [e for e in group.events("job.failed") if e.get("error_class") == "LeaseLost"]
    assert lost and lost[0]["worker"] == workers[0], group.stdout[-3000:]
    said = lost[0]["error"]
    assert f"Slice {piece.number} of run #{piece.run_id} of {SLOW} was taken over by pid" in said
    assert f"pid {workers[1]}" in said and "wrote nothing to it after that" in said
    assert JobRun.objects.get(pk=piece.run_id).state == State.SUCCEEDED


def test_pause_tune_restart_refused_resume_and_cancel_with_three_workers(
    seed, cli, rotation_audit, procs
) -> None:
    seed(20_000)
    # Slow chunks: the run must outlast an operator's three commands.
    group = _workers(cli, procs, 3, env={"SCENARIO_CHUNK_SLEEP": "0.2"})
    run = wait_done(SLOW, 600, group)
    wait_for(lambda: len(group.events("slice.claimed")) >= 3, timeout=30)

    tuned = cli.run("runjob", SLOW, "--tune", "--batch-size", "50")
    assert tuned.returncode == 0, tuned.stderr
    wait_for(lambda: len({e["worker"] for e in group.events("job.tuned")}) == 3, timeout=30)

    restart = cli.run("runjob", SLOW, "--restart")
    assert restart.returncode == ExitCode.BUSY, restart.stderr
    said = restart.stderr.strip()
    assert f"already running as run #{run.pk} (3 workers on " in said, said
    assert "add workers with `runjob" in said
    assert JobRun.objects.get(pk=run.pk).state == State.RUNNING

    paused = cli.run("runjob", SLOW, "--pause")
    assert paused.returncode == 0, paused.stderr
    assert f"Asked run #{run.pk} of {SLOW} (3 workers on " in paused.stderr
    assert group.wait(timeout=60) == ExitCode.PAUSED, group.stderr
    run = JobRun.objects.get(pk=run.pk)
    assert run.state == State.PAUSED
    assert not JobSlice.objects.filter(run=run).exclude(owner_token="").exists()
    counts = rotation_audit.counts()
    assert len(counts) == run.done and set(counts.values()) == {1}
    assert "is paused" in group.stderr.strip().splitlines()[-1]

    resumed = _workers(cli, procs, 3, "--resume", env={"SCENARIO_CHUNK_SLEEP": "0.2"})
    wait_done(SLOW, run.done + 300, resumed)
    cancelled = cli.run("runjob", SLOW, "--cancel")
    assert cancelled.returncode == 0, cancelled.stderr
    assert resumed.wait(timeout=60) == ExitCode.CANCELLED, resumed.stderr
    run = JobRun.objects.get(pk=run.pk)
    assert run.state == State.CANCELLED
    counts = rotation_audit.counts()
    assert len(counts) == run.done and set(counts.values()) == {1}, "a row rotated twice"


def test_uneven_keys__every_worker_stays_busy_until_near_the_end(
    seed, cli, rotation_audit, procs
) -> None:
    rows = 6_000
    seed(rows)
    with connection.cursor() as c:
        # Half the rows dense at the start, the other half spread thin over 1..10**9.
        c.execute(
            "UPDATE tickets_ticket SET id = 1000 * %s + (id::bigint * 99991) %% 1000000000 "
            "WHERE id > %s",
            [rows, rows // 2],
        )
    before = snapshot()
    assert max(before) > 10**8
    group = _workers(cli, procs, 2, env={"SCENARIO_CHUNK_SLEEP": "0.05"})
    assert group.wait(timeout=180) == 0, group.stderr
    assert_rotated_exactly_once(rotation_audit, before)
    finished = group.events("job.finished")
    assert len(finished) == 1
    # Each worker's last slice ends near the run's end: none sat idle while the other had
    # more than a few chunks left.
    ends: dict[int, datetime] = {}
    for event in group.events("slice.finished"):
        ends[event["worker"]] = _at(event)
    start = _at(group.events("job.started")[0])
    end = _at(finished[0])
    assert len(ends) == 2, ends
    idle = (max(ends.values()) - min(ends.values())).total_seconds()
    duration = (end - start).total_seconds()
    assert idle <= max(0.15 * duration, 1.5), (idle, duration, ends)
    splits = JobSlice.objects.filter(run=latest_run(SLOW)).count()
    assert splits >= 2


def _at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))

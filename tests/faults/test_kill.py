"""kill -9 of the runner: no handler runs, the transaction in flight dies with the process.

What must hold: the next run takes the same run over (no second run), resumes from the
last committed checkpoint and, in the end, every row present at the start was rotated
exactly once. Meanwhile ``listjobs`` shows the dead run as stalled.
"""

from __future__ import annotations

import json
import os
import random
import signal

import pytest

from batchjobs.models import JobRun, State
from tests.conftest import wait_for
from tests.faults.helpers import (
    ROTATE,
    SLOW,
    assert_checkpoint_consistent,
    assert_rotated_exactly_once,
    is_postgres,
    latest_run,
    runs_of,
    snapshot,
    wait_done,
)

ROWS = 5_000
BATCH = 100
SLOW_CHUNKS = {"SCENARIO_CHUNK_SLEEP": "0.04"}


@pytest.mark.django_db(transaction=True)
def test_kill9__repeated_kills_then_final_run_rotates_every_row_exactly_once(
    seed, cli, rotation_audit, procs
) -> None:
    seed(ROWS)
    before = snapshot()
    keys = sorted(before)
    seed_value = int(os.environ.get("FAULTS_SEED", random.SystemRandom().randrange(10**6)))
    rng = random.Random(seed_value)
    # Four kills at different, randomised progress points (and a random moment in the chunk).
    targets = [
        rng.randint(lo, hi) for lo, hi in ((200, 900), (1400, 2200), (2700, 3400), (3800, 4500))
    ]
    args = ("runjob", SLOW, "--batch-size", str(BATCH), "--log-format", "json")

    for target in targets:
        live = procs.spawn(cli, *args, env=SLOW_CHUNKS)
        wait_done(SLOW, target, live)
        live.kill9()
        run = latest_run(SLOW)
        assert run is not None
        assert run.state == State.RUNNING, f"seed {seed_value}: a killed run records no state"
        assert_checkpoint_consistent(rotation_audit, run, keys)

    final = cli.run(*args)
    assert final.returncode == 0, f"seed {seed_value}: {final.stderr}"
    runs = runs_of(SLOW)
    assert len(runs) == 1, f"seed {seed_value}: the kills left {len(runs)} runs, not one taken over"
    run = runs[0]
    assert run.state == State.SUCCEEDED
    assert (run.done, run.total, run.chunks) == (ROWS, ROWS, ROWS // BATCH)
    assert run.owner_token == ""
    assert len(run.stats["sessions"]) == len(targets) + 1
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.django_db(transaction=True)
def test_kill9__listjobs_shows_stalled_and_the_next_run_takes_it_over(
    seed, cli, rotation_audit, procs
) -> None:
    seed(3_000)
    before = snapshot()
    args = ("runjob", SLOW, "--batch-size", str(BATCH), "--log-format", "json")
    live = procs.spawn(cli, *args, env=SLOW_CHUNKS)
    wait_done(SLOW, 1_000, live)
    live.kill9()

    listed = cli.run("listjobs", SLOW, "--json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    stalled = entry["runs"][0]
    assert stalled["state"] == "stalled"
    assert stalled["owner"] == f"pid {live.pid} on {os.uname().nodename}"
    killed_run = JobRun.objects.get(pk=stalled["run_id"])

    resumed = procs.spawn(cli, *args)
    assert resumed.wait() == 0, resumed.stderr
    started = resumed.events("job.started")[0]
    assert started["run_id"] == killed_run.pk
    assert started["resumed"] is True
    assert started["done"] == killed_run.done
    assert runs_of(SLOW) == [killed_run]
    run = JobRun.objects.get(pk=killed_run.pk)
    assert (run.state, run.done) == (State.SUCCEEDED, 3_000)
    listed = json.loads(cli.run("listjobs", SLOW, "--json").stdout)
    assert listed[0]["runs"][0]["state"] == "succeeded"
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.django_db(transaction=True)
def test_kill9__an_unreaped_zombie_owner_is_taken_over_at_once(
    seed, cli, rotation_audit, procs
) -> None:
    """kill -9 leaves a zombie until its parent reaps it (a supervisor that is slow, or
    this test); a zombie is dead, so the next run takes over at once instead of refusing."""
    seed(2_000)
    before = snapshot()
    args = ("runjob", SLOW, "--batch-size", str(BATCH), "--log-format", "json")
    live = procs.spawn(cli, *args, env=SLOW_CHUNKS)
    wait_done(SLOW, 500, live)
    live.signal(signal.SIGKILL)  # and no wait(): the pid stays a zombie

    def zombie() -> bool:
        with open(f"/proc/{live.pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"

    wait_for(zombie, timeout=10)
    resumed = cli.run(*args)
    assert zombie(), "the test must take over from a zombie, not a reaped process"
    assert resumed.returncode == 0, resumed.stderr
    assert runs_of(SLOW)[0].state == State.SUCCEEDED
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.parametrize("sql_side", [False, True], ids=["python-values", "sql-side"])
@pytest.mark.django_db(transaction=True)
def test_kill9__between_the_work_and_the_checkpoint_nothing_is_done_twice(
    seed, cli, rotation_audit, sql_side
) -> None:
    """A test-only failpoint kills the runner (SIGKILL, by itself) after a chunk's work and
    before its checkpoint moves: both are one transaction, so the work dies with it, and
    the next run redoes exactly that chunk. With --sql-side too: ranges must neither
    overlap (a row rotated twice) nor leave gaps (a row never rotated)."""
    if sql_side and not is_postgres():
        pytest.skip("--sql-side needs PostgreSQL's gen_random_uuid(); covered in the PG pass")
    seed(2_000)
    before = snapshot()
    args = ("runjob", ROTATE, "--batch-size", "150", "--log-format", "json")
    args += ("--sql-side",) if sql_side else ()
    killed = cli.run(*args, env={"BATCHJOBS_FAILPOINT": "before_checkpoint:5"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run = latest_run(ROTATE)
    assert (run.state, run.done, run.chunks) == (State.RUNNING, 600, 4)
    assert_checkpoint_consistent(rotation_audit, run, sorted(before))

    final = cli.run(*args)
    assert final.returncode == 0, final.stderr
    assert runs_of(ROTATE) == [run]
    assert_rotated_exactly_once(rotation_audit, before)

"""A second ``runjob`` of the same job while one runs: refused at once, with a message that
names the running run, and the first run is not disturbed."""

from __future__ import annotations

import os
import time

import pytest

from batchjobs.exit_codes import ExitCode
from batchjobs.models import State
from tests.conftest import wait_for
from tests.faults.helpers import (
    SLOW,
    SLOW_STATEMENT,
    assert_rotated_exactly_once,
    backends,
    latest_run,
    runner_cli,
    runs_of,
    snapshot,
    wait_done,
)

ARGS = ("runjob", SLOW, "--batch-size", "100", "--log-format", "json")


@pytest.mark.django_db(transaction=True)
def test_second_runjob__refused_at_once_naming_the_running_run(
    seed, cli, rotation_audit, procs, request
) -> None:
    seed(1_500)
    before = snapshot()
    first = procs.spawn(cli, *ARGS, env={"SCENARIO_CHUNK_SLEEP": "0.3"})
    run = wait_done(SLOW, 200, first)

    # Two more at once: a plain one, and one that would abandon the run if it could.
    modes = ((), ("--restart",))
    started = time.monotonic()
    others = [(extra, procs.spawn(cli, *ARGS, *extra)) for extra in modes]
    refusals = []
    for extra, other in others:
        code = other.wait(timeout=30)
        refusals.append((extra, other, code, time.monotonic() - started))
    for extra, second, code, seconds in refusals:
        assert seconds < 3, f"{extra}: answered only after {seconds:.1f}s: {second.stderr}"
        assert code == ExitCode.BUSY, (extra, second.stderr)
        (line,) = second.stderr.strip().splitlines()
        assert f"{SLOW} is already running as run #{run.pk}" in line, (extra, line)
        assert f"(pid {first.pid} on {os.uname().nodename}" in line
        assert f"`runjob {SLOW} --pause` or --cancel" in line
        assert "Traceback" not in line
        assert second.stdout == "", "a refused run must not emit events"
    assert first.alive(), "the first run must still be at work while the others are refused"

    assert first.wait() == 0, first.stderr
    assert [e["run_id"] for e in first.events("job.finished")] == [run.pk]
    (only,) = runs_of(SLOW)
    assert only.pk == run.pk
    assert (only.state, only.done, only.chunks) == (State.SUCCEEDED, 1_500, 15)
    assert len(only.stats["sessions"]) == 1, "a refused process must not join the run"
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_second_runjob_and_pause_during_a_chunk_longer_than_their_wait__answered_clearly(
    seed, cli, rotation_audit, procs
) -> None:
    seed(300)  # a first chunk of 200 rows with a 7 s statement, then one of 100 without
    before = snapshot()
    app = "faults_long_chunk_runner"
    first = procs.spawn(
        runner_cli(cli, app),
        "runjob",
        SLOW_STATEMENT,
        "--batch-size",
        "200",
        "--statement-timeout",
        "60",
        "--log-format",
        "json",
        env={"SCENARIO_SLOW_ABOVE": "100", "SCENARIO_SLOW_SECONDS": "7"},
    )
    wait_for(lambda: backends(app, where="wait_event = 'PgSleep'"), timeout=30)
    run = latest_run(SLOW_STATEMENT)
    assert run is not None

    # A second run and an operator's pause, both while the long chunk holds the run row.
    second = procs.spawn(cli, "runjob", SLOW_STATEMENT)
    pause = procs.spawn(cli, "runjob", SLOW_STATEMENT, "--pause")
    second.wait(timeout=60)
    pause.wait(timeout=60)
    assert "Traceback" not in second.stderr, second.stderr[-1500:]
    assert second.proc.returncode == ExitCode.BUSY, second.stderr
    assert f"already running as run #{run.pk}" in second.stderr
    assert "Traceback" not in pause.stderr, pause.stderr[-1500:]
    (said,) = pause.stderr.strip().splitlines()
    assert f"run #{run.pk}" in said.lower(), said
    if pause.proc.returncode == 0:  # it waited for the chunk: the run pauses after it
        assert first.wait() == ExitCode.PAUSED, first.stderr
        assert cli.run("runjob", SLOW_STATEMENT, "--resume").returncode == 0
    else:  # or it said, in one line, that the run is busy: the run goes on
        assert pause.proc.returncode == ExitCode.BUSY, said
        assert first.wait() == 0, first.stderr
    assert len(runs_of(SLOW_STATEMENT)) == 1
    assert_rotated_exactly_once(rotation_audit, before)

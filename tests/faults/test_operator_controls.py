"""Pause, cancel and tune a running run from another terminal.

The runner reads the request inside its next chunk's transaction and acts at the chunk
boundary: pause and cancel end the process (exit 3 and 4) with the lease given up and no
transaction left open; tuning changes the pace of the same process (a job.tuned event).
"""

from __future__ import annotations

import time

import pytest

from batchjobs.exit_codes import ExitCode
from batchjobs.models import State
from tests.conftest import wait_for
from tests.faults.helpers import (
    SLOW,
    assert_checkpoint_consistent,
    assert_rotated_exactly_once,
    backends,
    is_postgres,
    runner_cli,
    runs_of,
    snapshot,
    wait_done,
)

ARGS = ("runjob", SLOW, "--batch-size", "100", "--log-format", "json")
CHUNK_SECONDS = 0.15


@pytest.mark.django_db(transaction=True)
def test_pause__exits_3_at_a_chunk_boundary_refuses_plain_runjob_resume_finishes(
    seed, cli, rotation_audit, procs
) -> None:
    seed(3_000)
    before = snapshot()
    app = "faults_paused_runner"
    live = procs.spawn(
        runner_cli(cli, app),
        *ARGS,
        env={"SCENARIO_CHUNK_SLEEP": str(CHUNK_SECONDS)},
    )
    run = wait_done(SLOW, 500, live)

    asked = cli.run("runjob", SLOW, "--pause")
    answered = time.monotonic()
    assert asked.returncode == 0, asked.stderr
    assert f"Asked run #{run.pk} of {SLOW} (pid {live.pid}" in asked.stderr
    assert "to pause; it will at its next chunk boundary" in asked.stderr
    code = live.wait(timeout=30)
    took = time.monotonic() - answered
    assert code == ExitCode.PAUSED, live.stderr
    # The request is seen by the next chunk, which still commits: about one chunk.
    assert took < 3 * CHUNK_SECONDS + 1, f"paused {took:.2f}s after the request"
    assert "Traceback" not in live.stderr
    assert f"is paused: continue with `runjob {SLOW} --resume`" in live.stderr
    assert len(live.events("job.paused")) == 1

    run.refresh_from_db()
    assert (run.state, run.owner_token, run.requested_action) == (State.PAUSED, "", "")
    assert 500 <= run.done < 3_000
    assert_checkpoint_consistent(rotation_audit, run, sorted(before))
    if is_postgres():
        # It left nothing open behind it: no session, let alone one idle in a transaction.
        assert backends(app, where="state = 'idle in transaction'") == []
        wait_for(lambda: backends(app) == [], timeout=10)

    refused = cli.run(*ARGS)
    assert refused.returncode == ExitCode.USAGE, refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert f"Run #{run.pk} of {SLOW} is paused" in line
    assert f"`runjob {SLOW} --resume`" in line
    assert refused.stdout == ""

    resumed = cli.run(*ARGS, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert runs_of(SLOW) == [run]
    run.refresh_from_db()
    assert (run.state, run.done, run.chunks) == (State.SUCCEEDED, 3_000, 30)
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.django_db(transaction=True)
def test_cancel__exits_4_and_the_next_runjob_starts_a_new_run(
    seed, cli, rotation_audit, procs
) -> None:
    seed(2_000)
    before = snapshot()
    keys = sorted(before)
    live = procs.spawn(cli, *ARGS, env={"SCENARIO_CHUNK_SLEEP": str(CHUNK_SECONDS)})
    run = wait_done(SLOW, 300, live)

    asked = cli.run("runjob", SLOW, "--cancel")
    assert asked.returncode == 0, asked.stderr
    assert "to cancel; it will at its next chunk boundary" in asked.stderr
    assert live.wait(timeout=30) == ExitCode.CANCELLED, live.stderr
    assert f"Run #{run.pk} of {SLOW} is cancelled" in live.stderr
    assert len(live.events("job.cancelled")) == 1
    run.refresh_from_db()
    assert (run.state, run.owner_token) == (State.CANCELLED, "")
    assert run.finished_at is not None, "a cancelled run is finished: when?"
    assert_checkpoint_consistent(rotation_audit, run, keys)
    cancelled_at = run.cursor

    fresh = cli.run(*ARGS)
    assert fresh.returncode == 0, fresh.stderr
    old, new = runs_of(SLOW)
    assert old.pk == run.pk and old.state == State.CANCELLED, "a cancelled run stays cancelled"
    assert new.pk != run.pk
    assert (new.state, new.done, new.cursor) == (State.SUCCEEDED, 2_000, keys[-1])
    # The new run starts over: the rows the cancelled run had done are rotated again.
    counts = rotation_audit.counts()
    assert all(counts[pk] == (2 if pk <= cancelled_at else 1) for pk in keys)


@pytest.mark.django_db(transaction=True)
def test_tune_sleep__picked_up_by_the_running_run(seed, cli, rotation_audit, procs) -> None:
    seed(3_000)
    before = snapshot()
    live = procs.spawn(
        cli, "runjob", SLOW, "--batch-size", "250", "--log-format", "json",
        env={"SCENARIO_CHUNK_SLEEP": "0.4"},  # ~4 s left: a loaded machine's CLI start
    )  # fmt: skip
    run = wait_done(SLOW, 500, live)

    asked = cli.run("runjob", SLOW, "--tune", "--sleep", "0.2")
    assert asked.returncode == 0, asked.stderr
    assert f"Run #{run.pk} of {SLOW} will use sleep=0.2 from its next chunk." in asked.stderr
    tuned = live.wait_event("job.tuned", timeout=30)
    assert tuned["sleep"] == 0.2
    assert tuned["run_id"] == run.pk
    assert live.wait() == 0, live.stderr
    run.refresh_from_db()
    assert run.tuning == {"sleep": 0.2}
    assert (run.state, run.done) == (State.SUCCEEDED, 3_000)
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.django_db(transaction=True)
def test_tune_batch_size__picked_up_and_honoured(seed, cli, rotation_audit, procs) -> None:
    seed(3_000)
    before = snapshot()
    live = procs.spawn(cli, *ARGS, env={"SCENARIO_CHUNK_SLEEP": "0.2"})
    wait_done(SLOW, 300, live)

    asked = cli.run("runjob", SLOW, "--tune", "--batch-size", "500")
    assert asked.returncode == 0, asked.stderr
    tuned = live.wait_event("job.tuned", timeout=30)
    assert tuned["chunk_size"] == 500
    assert live.wait() == 0, live.stderr
    (run,) = runs_of(SLOW)
    assert run.done == 3_000 and run.chunks < 30
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.django_db(transaction=True)
def test_tune_sleep_back_to_zero__takes_the_throttle_off(seed, cli, rotation_audit, procs) -> None:
    seed(2_000)
    before = snapshot()
    live = procs.spawn(cli, *ARGS, "--sleep", "0.1", env={"SCENARIO_CHUNK_SLEEP": "0"})
    wait_done(SLOW, 200, live)
    asked = cli.run("runjob", SLOW, "--tune", "--sleep", "0")
    assert asked.returncode == 0, asked.stderr
    tuned = live.wait_event("job.tuned", timeout=30)
    assert tuned["sleep"] == 0
    assert live.wait() == 0, live.stderr
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.django_db(transaction=True)
def test_batch_size_below_the_adaptive_minimum__is_honoured(seed, cli, rotation_audit) -> None:
    seed(500)
    before = snapshot()
    result = cli.run("runjob", SLOW, "--batch-size", "50", "--log-format", "json")
    assert result.returncode == 0, result.stderr
    (run,) = runs_of(SLOW)
    assert_rotated_exactly_once(rotation_audit, before)
    assert run.chunks == 10, f"--batch-size 50 on 500 rows ran {run.chunks} chunks"


@pytest.mark.django_db(transaction=True)
def test_pause_while_chunks_go_back_to_back__answered_at_once(
    seed, cli, rotation_audit, procs, request
) -> None:
    """No ``--sleep``: the operator's request must still get in between two chunks."""
    seed(2_000)
    before = snapshot()
    live = procs.spawn(cli, *ARGS, env={"SCENARIO_CHUNK_SLEEP": "0.3"})
    run = wait_done(SLOW, 200, live)
    started = time.monotonic()
    asked = cli.run("runjob", SLOW, "--pause")
    took = time.monotonic() - started
    assert asked.returncode == 0, asked.stderr
    assert f"Asked run #{run.pk} of {SLOW}" in asked.stderr
    assert took < 3, f"the pause request took {took:.1f}s to get in"
    assert live.wait(timeout=30) == ExitCode.PAUSED, live.stderr
    resumed = cli.run(*ARGS, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_rotated_exactly_once(rotation_audit, before)

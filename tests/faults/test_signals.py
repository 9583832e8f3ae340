"""SIGTERM, SIGINT and SIGHUP: the chunk in flight finishes (or, on a second signal, is rolled
back at once), the run is recorded as interrupted with its lease given up, the operator is
told how to resume, and the resumed run finishes exactly once."""

from __future__ import annotations

import signal
import time

import pytest

from batchjobs.exit_codes import ExitCode
from batchjobs.models import State
from tests.conftest import wait_for
from tests.faults.helpers import (
    SLOW,
    SLOW_STATEMENT,
    assert_checkpoint_consistent,
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
@pytest.mark.parametrize(
    ("signum", "code"),
    [
        (signal.SIGTERM, ExitCode.INTERRUPTED_SIGTERM),
        (signal.SIGINT, ExitCode.INTERRUPTED_SIGINT),
        (signal.SIGHUP, ExitCode.INTERRUPTED_SIGHUP),
    ],
    ids=["SIGTERM", "SIGINT", "SIGHUP"],
)
def test_signal__interrupts_at_a_chunk_boundary_and_resume_finishes_exactly_once(
    seed, cli, rotation_audit, procs, signum, code
) -> None:
    seed(3_000)
    before = snapshot()
    live = procs.spawn(cli, *ARGS, env={"SCENARIO_CHUNK_SLEEP": "0.1"})
    wait_done(SLOW, 1_000, live)
    live.signal(signum)
    assert live.wait(timeout=10) == code

    name = signal.Signals(signum).name
    run = latest_run(SLOW)
    assert run is not None
    assert run.state == State.INTERRUPTED
    assert run.owner_token == "", "an interrupted run must give its lease up"
    assert 1_000 <= run.done < 3_000
    assert_checkpoint_consistent(rotation_audit, run, sorted(before))
    stderr = live.stderr.strip()
    assert "Traceback" not in stderr
    assert f"interrupted by {name} after {run.done:,} of 3,000 rows" in stderr
    assert f"Resume with: python manage.py runjob {SLOW}" in stderr
    (event,) = live.events("job.interrupted")
    assert (event["signal"], event["done"], event["run_id"]) == (name, run.done, run.pk)
    assert event["resume_command"] == f"python manage.py runjob {SLOW}"

    resumed = cli.run(*ARGS)
    assert resumed.returncode == 0, resumed.stderr
    assert runs_of(SLOW) == [run]
    run.refresh_from_db()
    assert (run.state, run.done) == (State.SUCCEEDED, 3_000)
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.django_db(transaction=True)
def test_signal__a_second_signal_stops_at_once_and_rolls_the_chunk_back(
    seed, cli, rotation_audit, procs
) -> None:
    seed(2_000)
    before = snapshot()
    chunk_seconds = 1.5
    live = procs.spawn(cli, *ARGS, env={"SCENARIO_CHUNK_SLEEP": str(chunk_seconds)})
    committed = wait_done(SLOW, 200, live, timeout=30).done
    # A chunk has just committed (done is polled every 20 ms): 0.3 s on, the next one is
    # well inside its 1.5 s in the transaction.
    time.sleep(0.3)
    assert latest_run(SLOW).done == committed
    live.signal(signal.SIGTERM)
    time.sleep(0.1)
    second = time.monotonic()
    live.signal(signal.SIGINT)
    code = live.wait(timeout=10)
    stopped_after = time.monotonic() - second

    assert code == ExitCode.INTERRUPTED_SIGTERM, live.stderr  # the first signal's code
    assert stopped_after < chunk_seconds / 2, (
        f"the second signal took {stopped_after:.2f}s to stop the process: it waited for "
        "the chunk instead of stopping at once"
    )
    assert "Traceback" not in live.stderr
    assert "a second stop signal" in live.stderr
    run = latest_run(SLOW)
    assert run is not None
    assert (run.state, run.owner_token) == (State.INTERRUPTED, "")
    assert run.done == committed, "the chunk in flight must be rolled back, not committed"
    assert_checkpoint_consistent(rotation_audit, run, sorted(before))

    resumed = cli.run(*ARGS, env={"SCENARIO_CHUNK_SLEEP": "0"})
    assert resumed.returncode == 0, resumed.stderr
    run.refresh_from_db()
    assert (run.state, run.done, len(runs_of(SLOW))) == (State.SUCCEEDED, 2_000, 1)
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_signal__ctrl_c_twice_stops_at_once_even_inside_a_long_statement(
    seed, cli, rotation_audit, procs
) -> None:
    seed(1_000)
    before = snapshot()
    app = "faults_statement_runner"
    statement_seconds = 6
    live = procs.spawn(
        runner_cli(cli, app),
        "runjob",
        SLOW_STATEMENT,
        "--batch-size",
        "200",
        "--statement-timeout",
        "60",
        "--log-format",
        "json",
        env={"SCENARIO_SLOW_ABOVE": "100", "SCENARIO_SLOW_SECONDS": str(statement_seconds)},
    )
    wait_for(lambda: backends(app, where="wait_event = 'PgSleep'"), timeout=30)
    live.signal(signal.SIGINT)
    time.sleep(0.2)
    second = time.monotonic()
    live.signal(signal.SIGINT)
    code = live.wait(timeout=30)
    stopped_after = time.monotonic() - second

    assert code == ExitCode.INTERRUPTED_SIGINT, live.stderr
    run = latest_run(SLOW_STATEMENT)
    assert run is not None
    assert (run.state, run.owner_token) == (State.INTERRUPTED, "")
    assert_checkpoint_consistent(rotation_audit, run, sorted(before))
    assert stopped_after < 2, (
        f"Ctrl-C twice stopped the run only after {stopped_after:.1f}s, when the "
        f"{statement_seconds}s statement ended: {live.stderr.strip()}"
    )
    assert run.done == 0, "the second Ctrl-C must roll the chunk in flight back"
    resumed = cli.run("runjob", SLOW_STATEMENT, "--batch-size", "200")
    assert resumed.returncode == 0, resumed.stderr
    assert_rotated_exactly_once(rotation_audit, before)

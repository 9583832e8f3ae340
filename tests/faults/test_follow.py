"""``listjobs NAME --follow`` watches a run that another process is doing.

Two real processes: the runner, and the follower, which only reads the run row. The
follower must show progress that advances, and end by itself when the run ends.
"""

from __future__ import annotations

import re
import signal

import pytest

from tests.conftest import wait_for
from tests.faults.helpers import SLOW, latest_run, wait_done

ROWS = 2_000


def _done(line: str) -> int:
    found = re.search(r"  ([\d,]+)/2,000  ", line)
    assert found, line
    return int(found.group(1).replace(",", ""))


@pytest.mark.django_db(transaction=True)
def test_follow__shows_advancing_progress_and_ends_with_the_run(seed, cli, procs) -> None:
    seed(ROWS)
    args = ("runjob", SLOW, "--batch-size", "100", "--log-format", "json")
    runner = procs.spawn(cli, *args, env={"SCENARIO_CHUNK_SLEEP": "0.25"})
    wait_done(SLOW, 100, runner)

    follow = cli.run("listjobs", SLOW, "--follow", timeout=120)

    assert follow.returncode == 0, follow.stderr
    *progress, final = follow.stdout.splitlines()
    assert len(progress) >= 2, follow.stdout
    assert all(line.startswith(f"{SLOW} [") for line in progress)
    done = [_done(line) for line in progress]
    assert done == sorted(done) and done[-1] > done[0]
    run = latest_run(SLOW)
    assert run is not None
    assert final == f"Run #{run.pk} of {SLOW} succeeded: 2,000 of 2,000 rows (100.0%)."
    assert runner.wait(timeout=60) == 0


@pytest.mark.django_db(transaction=True)
def test_follow__ctrl_c_exits_130_quietly_and_leaves_the_run_alone(seed, cli, procs) -> None:
    seed(ROWS)
    args = ("runjob", SLOW, "--batch-size", "100", "--log-format", "json")
    runner = procs.spawn(cli, *args, env={"SCENARIO_CHUNK_SLEEP": "0.25"})
    wait_done(SLOW, 100, runner)
    follower = procs.spawn(cli, "listjobs", SLOW, "--follow")
    wait_for(lambda: follower.stdout.count("\n") >= 1, timeout=30)

    follower.signal(signal.SIGINT)

    assert follower.wait(timeout=30) == 130
    assert follower.stderr == ""
    assert runner.alive()
    runner.signal(signal.SIGINT)
    runner.wait(timeout=60)

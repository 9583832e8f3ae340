"""A health check that keeps objecting: the run waits, says why, and stays a live run.

Every wait beats the heartbeat (a throttled run is not a stalled one, and no second
process may take it over), and --max-runtime ends the session even while throttled.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from batchjobs.exit_codes import ExitCode
from batchjobs.lease import alive
from batchjobs.models import JobRun, State
from tests.faults.helpers import SLOW, assert_rotated_exactly_once, snapshot, wait_done

ARGS = ("runjob", SLOW, "--batch-size", "100", "--log-format", "json")


@pytest.fixture
def switch(tmp_path: Path, settings: Any) -> tuple[Path, dict[str, str]]:
    # This process judges liveness with the same windows as the runner.
    settings.BATCHJOBS_HEARTBEAT_SECONDS = 1.5
    settings.BATCHJOBS_STALE_AFTER_SECONDS = 4.0
    flag = tmp_path / "throttle"
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.faults.settings_throttled",
        "SCENARIO_THROTTLE_FILE": str(flag),
        "SCENARIO_CHUNK_SLEEP": "0.05",
    }
    return flag, env


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_throttled__heartbeat_goes_on_and_a_second_runjob_is_refused(
    seed, cli, rotation_audit, procs, switch
) -> None:
    flag, env = switch
    seed(2_000)
    before = snapshot()
    live = procs.spawn(cli, *ARGS, env=env)
    run = wait_done(SLOW, 300, live)
    flag.touch()
    throttled = live.wait_event("job.throttled", timeout=30)
    assert throttled["reason"] == "the test's switch is on"

    # Waits of 1 s, each shorter than the 1.5 s heartbeat: twice the stale window.
    deadline = time.monotonic() + 9
    while time.monotonic() < deadline:
        assert alive(JobRun.objects.get(pk=run.pk)), "a throttled run looked stalled"
        time.sleep(0.25)
    second = cli.run(*ARGS, env=env)
    assert second.returncode == ExitCode.BUSY, second.stderr
    assert "is already running" in second.stderr

    flag.unlink()
    assert live.wait() == 0, live.stderr
    assert JobRun.objects.get(pk=run.pk).state == State.SUCCEEDED
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_throttled__max_runtime_still_ends_the_session(seed, cli, procs, switch) -> None:
    flag, env = switch
    seed(500)
    flag.touch()
    started = time.monotonic()
    # Each verdict asks for 30 s: the window must end inside a wait, not after it.
    live = procs.spawn(
        cli, *ARGS, "--max-runtime", "2", env={**env, "SCENARIO_THROTTLE_WAIT": "30"}
    )
    code = live.wait(timeout=60)
    took = time.monotonic() - started
    assert code == ExitCode.MAX_RUNTIME, live.stderr
    assert took < 12, f"--max-runtime 2 stopped only after {took:.1f}s of throttling"
    assert live.events("job.throttled")
    (interrupted,) = live.events("job.interrupted")
    assert interrupted["cause"] == "--max-runtime 2s reached"
    assert JobRun.objects.get().state == State.INTERRUPTED

"""Pause, cancel and tune requests, for runs whose process is alive and for dead ones."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from batchjobs import control
from batchjobs.exceptions import InvalidOption, RunNotResumable
from batchjobs.models import JobRun, State

pytestmark = pytest.mark.django_db
JOB = "rotate_item_tokens"


@pytest.fixture(scope="module")
def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _live(**fields: Any) -> JobRun:
    """A run owned by this (live) process with a fresh heartbeat."""
    defaults = {
        "job": JOB,
        "state": State.RUNNING,
        "owner_token": "live-owner",
        "owner_host": socket.gethostname(),
        "owner_pid": os.getpid(),
        "heartbeat_at": timezone.now(),
    }
    return JobRun.objects.create(**{**defaults, **fields})


def _dead(dead_pid: int, **fields: Any) -> JobRun:
    """A run still marked running whose process has died."""
    return _live(owner_pid=dead_pid, **fields)


@pytest.mark.parametrize("action", ["pause", "cancel"])
def test_request__live_run_is_asked_and_keeps_running(action: str) -> None:
    run = _live()
    message = control.request(JOB, action)
    run.refresh_from_db()
    assert (run.state, run.requested_action, run.owner_token) == (
        State.RUNNING,
        action,
        "live-owner",
    )
    assert message == (
        f"Asked run #{run.pk} of {JOB} (pid {os.getpid()} on {socket.gethostname()}) to "
        f"{action}; it will at its next chunk boundary."
    )


def test_request__pause_of_a_dead_run_pauses_it_at_once(dead_pid: int) -> None:
    run = _dead(dead_pid)
    message = control.request(JOB, "pause")
    run.refresh_from_db()
    assert (run.state, run.owner_token, run.requested_action) == (State.PAUSED, "", "")
    assert run.finished_at is None
    assert message == f"Run #{run.pk} of {JOB} had no live process and is now paused."


def test_request__cancel_of_a_dead_run_finishes_it_at_once(dead_pid: int) -> None:
    run = _dead(dead_pid)
    control.request(JOB, "cancel")
    run.refresh_from_db()
    assert (run.state, run.owner_token) == (State.CANCELLED, "")
    assert run.finished_at is not None


def test_request__stale_heartbeat_counts_as_dead() -> None:
    run = _live(heartbeat_at=timezone.now() - timedelta(days=1))
    control.request(JOB, "pause")
    run.refresh_from_db()
    assert run.state == State.PAUSED


@pytest.mark.parametrize("state", [State.FAILED, State.INTERRUPTED, State.PAUSED])
def test_request__cancel_of_a_stopped_run(state: State) -> None:
    run = JobRun.objects.create(job=JOB, state=state)
    control.request(JOB, "cancel")
    run.refresh_from_db()
    assert run.state == State.CANCELLED


def test_request__pause_of_a_paused_run_says_so_and_changes_nothing() -> None:
    run = JobRun.objects.create(job=JOB, state=State.PAUSED)
    assert control.request(JOB, "pause") == f"Run #{run.pk} of {JOB} is already paused."


@pytest.mark.parametrize("action", ["pause", "cancel"])
def test_request__without_an_unfinished_run_is_refused(action: str) -> None:
    JobRun.objects.create(job=JOB, state=State.SUCCEEDED)
    with pytest.raises(RunNotResumable, match=f"{JOB} has no unfinished run."):
        control.request(JOB, action)


def test_request__concerns_only_the_named_job() -> None:
    other = _live(job="other_job")
    with pytest.raises(RunNotResumable):
        control.request(JOB, "pause")
    other.refresh_from_db()
    assert other.requested_action == ""


def test_display_state__running_with_a_dead_owner_is_stalled(dead_pid: int) -> None:
    assert control.display_state(_dead(dead_pid)) == "stalled"


def test_display_state__shows_a_pending_request() -> None:
    assert control.display_state(_live(requested_action="pause")) == "running (pause requested)"
    JobRun.objects.all().delete()
    assert control.display_state(_live()) == "running"


def test_display_state__other_states_as_stored() -> None:
    assert control.display_state(JobRun(job=JOB, state=State.PAUSED)) == "paused"
    assert control.display_state(JobRun(job=JOB, state=State.QUARANTINED)) == (
        "succeeded_with_quarantine"
    )


def test_tune__records_changes_for_the_runner_to_pick_up() -> None:
    run = _live(tuning={"sleep": 2.0})
    message = control.tune(JOB, batch_size=50, sleep=None, target_chunk_seconds=None)
    run.refresh_from_db()
    assert run.tuning == {"sleep": 2.0, "batch_size": 50}
    assert message == f"Run #{run.pk} of {JOB} will use batch_size=50 from its next chunk."


def test_tune__a_fixed_size_replaces_a_target_and_back() -> None:
    run = _live()
    control.tune(JOB, target_chunk_seconds=1.5)
    control.tune(JOB, batch_size=300)
    run.refresh_from_db()
    assert run.tuning == {"batch_size": 300}
    control.tune(JOB, target_chunk_seconds=0.2)
    run.refresh_from_db()
    assert run.tuning == {"target_chunk_seconds": 0.2}


def test_tune__sleep_can_be_set_back_to_zero() -> None:
    run = _live(tuning={"sleep": 5.0})
    control.tune(JOB, sleep=0.0)
    run.refresh_from_db()
    assert run.tuning == {"sleep": 0.0}


def test_tune__nothing_to_change_is_refused() -> None:
    _live()
    with pytest.raises(InvalidOption, match="--tune needs --sleep, --batch-size"):
        control.tune(JOB, sleep=None, batch_size=None, target_chunk_seconds=None)
    with pytest.raises(InvalidOption):
        control.tune(JOB, owner_token="mine")  # not tunable


def test_tune__without_an_unfinished_run_is_refused() -> None:
    with pytest.raises(RunNotResumable):
        control.tune(JOB, sleep=1.0)

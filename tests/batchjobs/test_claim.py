"""Claiming a run: the paths the runner tests do not reach."""

from __future__ import annotations

import getpass
from typing import Any

import pytest

from batchjobs import claim
from batchjobs.claim import Claim, busy_message, os_user
from batchjobs.exceptions import RunBusy
from batchjobs.keyset import high_water_mark
from batchjobs.lease import Owner
from batchjobs.models import JobRun, State
from batchjobs.options import RunOptions
from tests.testapp.models import Item

JOB = "rotate_item_tokens"


def _claim(**options: Any) -> Claim:
    return Claim(
        job_name=JOB,
        queryset=Item.objects.all(),
        key="pk",
        options=RunOptions(**options),
        owner=Owner.current(),
        alias="default",
    )


@pytest.mark.django_db(transaction=True)
def test_claim__new_run_is_owned_by_this_process_from_the_start(seed_items) -> None:
    seed_items(12)
    owner = Owner.current()
    run = Claim(
        job_name=JOB,
        queryset=Item.objects.all(),
        key="pk",
        options=RunOptions(reason="INC-9"),
        owner=owner,
        alias="default",
    ).run()
    assert (run.state, run.total, run.done, run.cursor) == (State.RUNNING, 12, 0, None)
    assert (run.owner_token, run.owner_pid, run.owner_host) == (owner.token, owner.pid, owner.host)
    assert run.started_at is not None and run.heartbeat_at is not None
    assert run.options == {"reason": "INC-9"}


@pytest.mark.django_db(transaction=True)
def test_claim__run_created_elsewhere_between_look_and_insert_makes_this_one_busy(
    seed_items, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_items(3)

    def racing(queryset: Any, key: str) -> Any:
        JobRun.objects.create(job=JOB, state=State.RUNNING)  # the other process's insert
        return high_water_mark(queryset, key)

    monkeypatch.setattr(claim, "high_water_mark", racing)
    with pytest.raises(RunBusy) as caught:
        _claim().run()
    assert str(caught.value) == f"Another process is starting {JOB}; try again in a moment."


def test_busy_message__names_the_owner_and_the_way_out() -> None:
    run = JobRun(pk=4, job=JOB, owner_pid=123, owner_host="box", heartbeat_at=None)
    assert busy_message(JOB, run) == (
        f"{JOB} is already running as run #4 (pid 123 on box, last heartbeat none yet). "
        f"Wait for it, or stop it with `runjob {JOB} --pause` or --cancel."
    )


def test_os_user__unknown_when_the_user_database_has_no_entry(monkeypatch) -> None:
    def no_entry() -> str:
        raise KeyError("getpwuid(): uid not found: 1000")

    monkeypatch.setattr(getpass, "getuser", no_entry)
    assert os_user() == "unknown"

"""Runs in the Django admin: what an operator sees, and the pause/cancel actions."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from batchjobs.models import JobRun, QuarantinedRow, State

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hasher")]
CHANGELIST = "admin:batchjobs_jobrun_changelist"


@pytest.fixture
def fast_password_hasher(settings: Any) -> None:
    """The admin user's password is hashed once per test; the default hasher is slow."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _live(job: str = "rotate_ticket_tokens", **fields: Any) -> JobRun:
    return JobRun.objects.create(
        job=job,
        state=State.RUNNING,
        owner_token="live",
        owner_host=socket.gethostname(),
        owner_pid=os.getpid(),
        heartbeat_at=timezone.now(),
        **fields,
    )


def test_admin__list_shows_state_progress_bar_and_eta(admin_client) -> None:
    _live(done=250, total=1_000, eta_seconds=75.0, requested_action="pause")
    JobRun.objects.create(job="older", state=State.RUNNING, owner_token="gone", done=1, total=2)
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert '<progress max="100" value="25.0"></progress> 25.0% (250 / 1,000)' in page
    assert "1m15s" in page
    assert "running (pause requested)" in page
    assert "stalled" in page


def test_admin__finished_run_has_no_eta(admin_client) -> None:
    JobRun.objects.create(
        job="rotate_ticket_tokens",
        state=State.SUCCEEDED,
        done=5,
        total=5,
        eta_seconds=0.0,
        finished_at=timezone.now(),
    )
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert '<progress max="100" value="100.0"></progress> 100.0% (5 / 5)' in page


def test_admin__only_tuning_is_editable_and_runs_cannot_be_added(admin_client) -> None:
    run = _live()
    QuarantinedRow.objects.create(run=run, key=17, error_class="builtins.ValueError")
    page = admin_client.get(reverse("admin:batchjobs_jobrun_change", args=[run.pk]))
    html = page.content.decode()
    assert 'name="tuning"' in html
    assert 'name="state"' not in html and 'name="cursor"' not in html
    assert "builtins.ValueError" in html  # the quarantined rows, inline
    assert admin_client.get(reverse("admin:batchjobs_jobrun_add")).status_code == 403


@pytest.mark.parametrize("action", ["pause", "cancel"])
def test_admin__action_asks_a_live_run(admin_client, action: str) -> None:
    run = _live()
    response = admin_client.post(
        reverse(CHANGELIST), {"action": action, "_selected_action": [run.pk]}, follow=True
    )
    run.refresh_from_db()
    assert (run.state, run.requested_action) == (State.RUNNING, action)
    assert f"Asked run #{run.pk}" in response.content.decode()


def test_admin__action_on_a_finished_run_says_there_is_nothing_to_stop(admin_client) -> None:
    run = JobRun.objects.create(job="rotate_ticket_tokens", state=State.SUCCEEDED)
    response = admin_client.post(
        reverse(CHANGELIST), {"action": "pause", "_selected_action": [run.pk]}, follow=True
    )
    # The admin capitalises the first letter of a message.
    assert "Rotate_ticket_tokens has no unfinished run." in response.content.decode()
    run.refresh_from_db()
    assert run.state == State.SUCCEEDED


def test_admin__action_pauses_a_dead_run_at_once(admin_client) -> None:
    run = JobRun.objects.create(job="rotate_ticket_tokens", state=State.INTERRUPTED)
    admin_client.post(reverse(CHANGELIST), {"action": "pause", "_selected_action": [run.pk]})
    run.refresh_from_db()
    assert run.state == State.PAUSED


# The change form carries the (empty) quarantined-rows inline's management form.
INLINE = {
    f"quarantined_rows-{k}": v
    for k, v in {
        "TOTAL_FORMS": 0,
        "INITIAL_FORMS": 0,
        "MIN_NUM_FORMS": 0,
        "MAX_NUM_FORMS": 0,
    }.items()
}


def test_admin__saving_tuning_never_writes_the_runners_columns_back(admin_client) -> None:
    run = _live(cursor=100, done=100, total=1_000)
    url = reverse("admin:batchjobs_jobrun_change", args=[run.pk])
    admin_client.get(url)  # the operator opens the form...
    # ...meanwhile the runner commits a chunk
    JobRun.objects.filter(pk=run.pk).update(cursor=200, done=200)
    response = admin_client.post(url, {"tuning": '{"sleep": 0.5}', **INLINE}, follow=True)
    run.refresh_from_db()
    assert (run.cursor, run.done, run.state) == (200, 200, State.RUNNING)
    assert run.tuning == {"sleep": 0.5}
    assert f"Run #{run.pk} of rotate_ticket_tokens will use sleep=0.5" in response.content.decode()


def test_admin__bad_tuning_is_refused_with_a_message(admin_client) -> None:
    run = _live()
    url = reverse("admin:batchjobs_jobrun_change", args=[run.pk])
    response = admin_client.post(url, {"tuning": '{"sleep": "x"}', **INLINE}, follow=True)
    run.refresh_from_db()
    assert run.tuning == {}
    # The admin capitalises the first letter of a message.
    assert "Tuning values must be numbers" in response.content.decode()

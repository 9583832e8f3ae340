"""Runs in the Django admin: what an operator sees, the pause/cancel actions and tuning, and
who may use them."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from batchjobs.admin import JobRunAdmin
from batchjobs.models import JobRun, QuarantinedRow, State

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hasher")]
CHANGELIST = "admin:batchjobs_jobrun_changelist"


@pytest.fixture
def fast_password_hasher(settings: Any) -> None:
    """The admin user's password is hashed once per test; the default hasher is slow."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _live(job: str = "rotate_item_tokens", **fields: Any) -> JobRun:
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
        job="rotate_item_tokens",
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
    run = JobRun.objects.create(job="rotate_item_tokens", state=State.SUCCEEDED)
    response = admin_client.post(
        reverse(CHANGELIST), {"action": "pause", "_selected_action": [run.pk]}, follow=True
    )
    # The admin capitalises the first letter of a message.
    assert "Rotate_item_tokens has no unfinished run." in response.content.decode()
    run.refresh_from_db()
    assert run.state == State.SUCCEEDED


def test_admin__action_pauses_a_dead_run_at_once(admin_client) -> None:
    run = JobRun.objects.create(job="rotate_item_tokens", state=State.INTERRUPTED)
    admin_client.post(reverse(CHANGELIST), {"action": "pause", "_selected_action": [run.pk]})
    run.refresh_from_db()
    assert run.state == State.PAUSED


# The change form carries the (empty) quarantined-rows inline's management form.
# The management forms of the run page's inlines (its slices and quarantined rows), as a
# browser posts them.
INLINE = {
    f"{prefix}-{k}": v
    for prefix in ("slices", "quarantined_rows")
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
    assert f"Run #{run.pk} of rotate_item_tokens will use sleep=0.5" in response.content.decode()


def test_admin__bad_tuning_is_refused_with_a_message(admin_client) -> None:
    run = _live()
    url = reverse("admin:batchjobs_jobrun_change", args=[run.pk])
    response = admin_client.post(url, {"tuning": '{"sleep": "x"}', **INLINE}, follow=True)
    run.refresh_from_db()
    assert run.tuning == {}
    # The admin capitalises the first letter of a message.
    assert "Tuning values must be numbers" in response.content.decode()


# Who may steer a run. Pause, cancel and tuning need ``batchjobs.control_jobrun``; viewing
# (or the model's change permission, which grants nothing more) does not steer anything.
USERS: dict[str, tuple[bool, bool, tuple[str, ...]]] = {
    # name: (is_staff, is_superuser, permissions)
    "anonymous": (False, False, ()),
    "non_staff_with_control": (False, False, ("view_jobrun", "control_jobrun")),
    "staff_without_permissions": (True, False, ()),
    "staff_with_view": (True, False, ("view_jobrun",)),
    "staff_with_view_and_change": (True, False, ("view_jobrun", "change_jobrun")),
    "staff_with_control_only": (True, False, ("control_jobrun",)),
    "staff_with_view_and_control": (True, False, ("view_jobrun", "control_jobrun")),
    "superuser": (True, True, ()),
}
MAY_CONTROL = {"staff_with_control_only", "staff_with_view_and_control", "superuser"}
CANNOT_CONTROL = ["staff_with_view", "staff_with_view_and_change"]


def _outcome(user: str, *, refused: str) -> str:
    """What the admin answers ``user``: the admin's own gate first, then ours."""
    if user in ("anonymous", "non_staff_with_control"):
        return "login"
    if user == "staff_without_permissions":
        return "forbidden"
    return "done" if user in MAY_CONTROL else refused


def _log_in(client: Client, name: str) -> Client:
    if name == "anonymous":
        return client
    is_staff, is_superuser, codenames = USERS[name]
    user = User.objects.create_user(name, is_staff=is_staff, is_superuser=is_superuser)
    perms = Permission.objects.filter(content_type__app_label="batchjobs", codename__in=codenames)
    assert perms.count() == len(codenames)  # a typo must not pass as "no permission"
    user.user_permissions.set(perms)
    client.force_login(user)
    return client


def _messages(response: HttpResponse) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _assert_sent_to_login(response: HttpResponse) -> None:
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login") + "?next=")


@pytest.mark.parametrize("kind", ["live", "dead"])
@pytest.mark.parametrize("action", ["pause", "cancel"])
@pytest.mark.parametrize("user", USERS)
def test_admin__actions_need_control_permission(
    client: Client, user: str, action: str, kind: str
) -> None:
    if kind == "live":  # asked through requested_action, at its next chunk
        run = _live()
        before, after = (State.RUNNING, ""), (State.RUNNING, action)
    else:  # no live process: changed at once, and cancel is final
        run = JobRun.objects.create(job="rotate_item_tokens", state=State.INTERRUPTED)
        target = State.PAUSED if action == "pause" else State.CANCELLED
        before, after = (State.INTERRUPTED, ""), (target, "")
    response = _log_in(client, user).post(
        reverse(CHANGELIST), {"action": action, "index": 0, "_selected_action": [run.pk]}
    )
    run.refresh_from_db()
    outcome = _outcome(user, refused="not_offered")
    assert (run.state, run.requested_action) == (after if outcome == "done" else before)
    if outcome == "login":
        _assert_sent_to_login(response)
    elif outcome == "forbidden":
        assert response.status_code == 403
    elif outcome == "not_offered":
        # A forged POST: the user is offered no action at all, so Django ignores it and
        # shows the list, as for a GET.
        assert response.status_code == 200
        assert response.context["action_form"] is None
        assert _messages(response) == []
    else:
        assert (response.status_code, response.url) == (302, reverse(CHANGELIST))
        [message] = _messages(response)
        assert message.startswith(f"Asked run #{run.pk}" if kind == "live" else f"Run #{run.pk}")


@pytest.mark.parametrize("user", USERS)
def test_admin__tuning_needs_control_permission(client: Client, user: str) -> None:
    run = _live()
    url = reverse("admin:batchjobs_jobrun_change", args=[run.pk])
    response = _log_in(client, user).post(url, {"tuning": '{"sleep": 0.5}', **INLINE})
    run.refresh_from_db()
    outcome = _outcome(user, refused="forbidden")
    assert run.tuning == ({"sleep": 0.5} if outcome == "done" else {})
    if outcome == "login":
        _assert_sent_to_login(response)
    elif outcome == "forbidden":
        assert response.status_code == 403
    else:
        assert (response.status_code, response.url) == (302, reverse(CHANGELIST))
        assert f"Run #{run.pk} of rotate_item_tokens will use sleep=0.5" in _messages(response)[0]


@pytest.mark.parametrize("user", [*CANNOT_CONTROL, *sorted(MAY_CONTROL)])
def test_admin__pause_and_cancel_are_offered_only_with_control(client: Client, user: str) -> None:
    _live()
    response = _log_in(client, user).get(reverse(CHANGELIST))
    assert response.status_code == 200
    form = response.context["action_form"]
    offered = {value for value, _ in form.fields["action"].choices} if form else set()
    if user in MAY_CONTROL:
        assert {"pause", "cancel"} <= offered
    else:
        assert not {"pause", "cancel"} & offered


@pytest.mark.parametrize("user", [*CANNOT_CONTROL, *sorted(MAY_CONTROL)])
def test_admin__tuning_is_read_only_without_control(client: Client, user: str) -> None:
    run = _live(tuning={"sleep": 0.25})
    url = reverse("admin:batchjobs_jobrun_change", args=[run.pk])
    html = _log_in(client, user).get(url).content.decode()
    assert ('name="tuning"' in html) is (user in MAY_CONTROL)
    assert "0.25" in html  # shown either way


def test_admin__forged_pause_is_refused_like_any_unavailable_action(client: Client) -> None:
    """A user with delete but not control: no action is offered at all (bulk delete is
    withdrawn, it would delete unfinished runs), and a forged POST runs nothing."""
    run = JobRun.objects.create(job="rotate_item_tokens", state=State.INTERRUPTED)
    user = User.objects.create_user("deleter", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(codename__in=["view_jobrun", "delete_jobrun"])
    )
    client.force_login(user)
    response = client.post(
        reverse(CHANGELIST), {"action": "pause", "index": 0, "_selected_action": [run.pk]}
    )
    run.refresh_from_db()
    assert (run.state, run.requested_action) == (State.INTERRUPTED, "")
    assert response.status_code == 200
    assert _messages(response) == []
    assert 'name="action"' not in response.content.decode()


def test_admin__every_action_declares_the_control_permission() -> None:
    """A new action must not forget the permission: Django runs an action that declares none
    for anyone who may view the list."""
    for name in JobRunAdmin.actions:
        assert list(getattr(JobRunAdmin, name).allowed_permissions) == ["control"], name


def test_admin__an_unfinished_run_cannot_be_deleted(admin_client) -> None:
    """Deleting a live run would drop its checkpoint and the one-run-at-a-time guard."""
    live = _live()
    finished = JobRun.objects.create(job="rotate_item_tokens", state=State.SUCCEEDED)
    refused = admin_client.post(
        reverse("admin:batchjobs_jobrun_delete", args=[live.pk]), {"post": "yes"}
    )
    assert refused.status_code == 403
    assert JobRun.objects.filter(pk=live.pk).exists()
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "delete_selected" not in page
    deleted = admin_client.post(
        reverse("admin:batchjobs_jobrun_delete", args=[finished.pk]), {"post": "yes"}
    )
    assert deleted.status_code == 302
    assert not JobRun.objects.filter(pk=finished.pk).exists()


LIVE = "admin:batchjobs_jobrun_live"


def test_admin__live_view_gives_the_shown_values_of_the_runs_asked(admin_client) -> None:
    run = _live(done=250, total=1_000, rate=1234.4, eta_seconds=75.0)
    done = JobRun.objects.create(job="older", state=State.SUCCEEDED, finished_at=timezone.now())
    response = admin_client.get(reverse(LIVE), {"ids": f"{run.pk},{done.pk},x,99999"})
    assert response.status_code == 200
    assert response.json() == {
        "runs": {
            str(run.pk): {
                "live": True,
                "state": "running",
                "percent": 25.0,
                "progress": "25.0% (250 / 1,000)",
                "rate": "1,234 rows/s",
                "eta": "1m15s",
                "done": "250",
                "chunks": "0",
            },
            str(done.pk): {
                "live": False,
                "state": "succeeded",
                "percent": 0.0,
                "progress": "0.0% (0 / ?)",
                "rate": "-",
                "eta": "-",
                "done": "0",
                "chunks": "0",
            },
        }
    }


@pytest.mark.parametrize("user", USERS)
def test_admin__live_view_needs_the_view_permission(client: Client, user: str) -> None:
    run = _live(done=1, total=2)
    response = _log_in(client, user).get(reverse(LIVE), {"ids": str(run.pk)})
    if user in ("anonymous", "non_staff_with_control"):
        _assert_sent_to_login(response)
    elif user == "staff_without_permissions":
        assert response.status_code == 403
    else:
        assert response.status_code == 200
        assert list(response.json()["runs"]) == [str(run.pk)]


def test_admin__list_marks_the_values_the_page_refreshes(admin_client) -> None:
    run = _live(done=250, total=1_000, rate=10.0, eta_seconds=75.0)
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    for field in ("state", "progress", "rate", "eta"):
        assert f'data-run="{run.pk}" data-field="{field}" data-live="1"' in page
    assert "batchjobs/live.js" in page
    assert f'data-url="{reverse(LIVE)}"' in page


def test_admin__run_page_shows_options_sessions_retries_and_verification_as_tables(
    admin_client,
) -> None:
    session = {"by": "ops", "at": "2026-11-30T10:00:00+00:00", "host": "web1", "pid": 42}
    run = JobRun.objects.create(
        job="rotate_item_tokens",
        state=State.SUCCEEDED,
        finished_at=timezone.now(),
        options={"batch_size": 1000, "sleep": 0.5},
        verification={"checked": 100000, "stale_found": 0},
        stats={
            "sessions": [session, {**session, "pid": 43, "options": {"resume": True}}],
            "retry_log": [{"chunk": 3, "error_class": "OperationalError"}],
            "table_bytes_before": 8192,
        },
    )
    page = admin_client.get(reverse("admin:batchjobs_jobrun_change", args=[run.pk]))
    html = page.content.decode()
    assert "<tr><th>batch_size</th><td>1,000</td></tr>" in html
    assert "<tr><th>checked</th><td>100,000</td></tr>" in html
    assert "<tr><th>table_bytes_before</th><td>8,192</td></tr>" in html
    assert "<th>by</th><th>at</th><th>host</th><th>pid</th><th>options</th>" in html
    assert "<td>43</td><td>resume=True</td>" in html
    assert "<td>3</td><td>OperationalError</td>" in html
    assert "{&#x27;" not in html and "{'" not in html  # no dict is printed raw

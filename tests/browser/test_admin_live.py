"""The admin in a real browser, as an operator uses it: progress that moves by itself,
pause and cancel buttons that stop real runners, and a watcher who cannot press them.

Debian's chromium through Playwright, ``runserver`` and ``runjob`` as real processes on
the test database. Skipped, with the command that installs it, where chromium is missing.
"""

from __future__ import annotations

from typing import Any

import pytest

from batchjobs.exit_codes import ExitCode
from batchjobs.models import State
from tests.browser.conftest import PASSWORD
from tests.conftest import Cli, wait_for
from tests.faults.helpers import SLOW, latest_run, runs_of, wait_done, writer_room

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARGS = ("runjob", SLOW, "--batch-size", "100", "--log-format", "json", *writer_room(0.05))
SLOW_CHUNKS = {"SCENARIO_CHUNK_SLEEP": "0.25"}  # 30 chunks: about 8 s, long enough to act
CHANGELIST = "/admin/batchjobs/jobrun/"


def _log_in(browser: Any, server: str, user: str) -> Any:
    page = browser.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{server}/admin/login/?next={CHANGELIST}")
    page.fill("#id_username", user)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{server}{CHANGELIST}")
    return page


def _cell(page: Any, run_id: int, field: str) -> str:
    return str(page.locator(f'[data-run="{run_id}"][data-field="{field}"]').inner_text())


def _act(page: Any, run_id: int, action: str) -> None:
    page.check(f'input[name="_selected_action"][value="{run_id}"]')
    page.select_option('select[name="action"]', action)
    page.click('button[name="index"]')
    page.wait_for_load_state()


def test_admin__live_progress_pause_resume_cancel_and_a_watcher_who_cannot_act(
    browser, server, users, seed, cli: Cli, procs
) -> None:
    seed(3_000)
    live = procs.spawn(cli, *ARGS, env=SLOW_CHUNKS)
    run = wait_done(SLOW, 200, live)

    page = _log_in(browser, server, users["operator"])
    # The admin's own CSS is served (staticfiles): the page is styled, not bare HTML.
    assert page.evaluate("getComputedStyle(document.body).fontFamily") != '"Times New Roman"'
    assert page.locator("#header").evaluate("e => getComputedStyle(e).display") == "flex"
    first = _cell(page, run.pk, "progress")
    page.evaluate("window.notReloaded = true")
    # live.js polls every 2 s: the percentage moves while the page stays the same page.
    page.wait_for_function(
        """([id, first]) => document.querySelector(
               `[data-run="${id}"][data-field="progress"]`).innerText !== first""",
        arg=[run.pk, first],
    )
    assert page.evaluate("window.notReloaded") is True
    assert _cell(page, run.pk, "rate").endswith("rows/s")
    assert _cell(page, run.pk, "eta") != "?"

    _act(page, run.pk, "pause")
    assert page.locator(".messagelist").inner_text().startswith(f"Asked run #{run.pk}")
    page.evaluate("window.notReloaded = true")  # the action's POST loaded a new page
    assert live.wait(timeout=30) == ExitCode.PAUSED, live.stderr
    run.refresh_from_db()
    assert run.state == State.PAUSED
    page.wait_for_function(
        f"""document.querySelector('[data-run="{run.pk}"][data-field="state"]')
              .innerText === "paused" """
    )

    resumed = cli.run(*ARGS, "--resume", env={"SCENARIO_CHUNK_SLEEP": "0"})
    assert resumed.returncode == 0, resumed.stderr
    # No reload since the action: the paused run was polled, and now shows its end.
    page.wait_for_function(
        f"""document.querySelector('[data-run="{run.pk}"][data-field="state"]')
              .innerText === "succeeded" """
    )
    assert page.evaluate("window.notReloaded") is True

    # The run page shows what happened in tables, not dicts.
    page.goto(f"{server}{CHANGELIST}{run.pk}/change/")
    sessions = page.locator(".field-sessions table")
    assert sessions.locator("tbody tr").count() == 2  # the first process, then --resume
    assert "{'" not in page.locator("#content").inner_text()

    second = procs.spawn(cli, *ARGS, env=SLOW_CHUNKS)
    other = _wait_new_run(second, after=run.pk)
    page.goto(f"{server}{CHANGELIST}")
    _act(page, other, "cancel")
    assert second.wait(timeout=30) == ExitCode.CANCELLED, second.stderr
    assert [r.state for r in runs_of(SLOW)] == [State.SUCCEEDED, State.CANCELLED]

    watcher = _log_in(browser, server, users["watcher"])
    assert watcher.locator(f'[data-run="{run.pk}"][data-field="state"]').count() == 1
    assert watcher.locator('select[name="action"]').count() == 0
    assert watcher.locator('input[name="_selected_action"]').count() == 0
    watcher.goto(f"{server}{CHANGELIST}{other}/change/")
    assert watcher.locator('textarea[name="tuning"]').count() == 0
    assert watcher.locator('input[type="submit"][name="_save"]').count() == 0


def _wait_new_run(live: Any, *, after: int) -> int:
    def started() -> int | None:
        run = latest_run(SLOW)
        if run is not None and run.pk != after and run.done > 0:
            return run.pk
        live.check_alive()
        return None

    return int(wait_for(started, timeout=60))

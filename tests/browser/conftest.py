"""The browser tests' pieces: Debian's chromium through Playwright, a real ``runserver``
against the test database, users, and live runner processes."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections

from tests.conftest import ROOT, Cli, database_url, wait_for
from tests.faults.helpers import backends, free_port, is_postgres, runner_cli

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
NEEDS_CHROMIUM = "needs Debian's chromium: apt-get install chromium"
# Root in a container: no sandbox, and nothing that reaches out to the network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "browser-test-password"


@pytest.fixture
def browser(transactional_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Debian's chromium, driven by Playwright; never a downloaded browser.

    Playwright's sync API keeps an asyncio loop running in this thread, and Django then
    refuses every query of the test ("async context"). The queries are still plain
    blocking calls in the test's own thread, so the guard is lifted for this test only.
    """
    missing = []
    if not os.path.exists(CHROMIUM):
        missing.append(f"{CHROMIUM} is missing")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package is missing (pip install -e '.[dev]')")
    if missing:
        pytest.skip(f"{NEEDS_CHROMIUM} ({'; '.join(missing)})")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
        # Django keeps connections per asyncio context: the ones opened while the loop ran
        # are not the test's usual one, and would keep the test database from being dropped.
        connections.close_all()


@pytest.fixture
def server(transactional_db: None) -> Iterator[str]:
    """``runserver`` (DEBUG on, so it serves the static files) on the test database: the
    admin as an operator opens it. Its URL."""
    port = free_port()
    app = "browser_runserver"
    cli = runner_cli(Cli(database_url()), app)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=cli.env(DJANGO_DEBUG="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"runserver exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/admin/login/", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    try:
        wait_for(answers, timeout=30, every=0.1)
        yield url
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if is_postgres():
            # Its sessions end a moment after it does; the test database is dropped at the
            # end of the session and must have no one left on it.
            wait_for(lambda: backends(app) == [], timeout=10)


@pytest.fixture
def users(transactional_db: None) -> dict[str, str]:
    """An operator (a superuser, who may pause and cancel) and a watcher (staff with
    ``view_jobrun`` only): their user names."""
    from django.contrib.auth.models import Permission, User  # noqa: PLC0415

    User.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    watcher = User.objects.create_user("watcher", "watcher@example.com", PASSWORD)
    watcher.is_staff = True
    watcher.save()
    watcher.user_permissions.add(Permission.objects.get(codename="view_jobrun"))
    return {"operator": "operator", "watcher": "watcher"}

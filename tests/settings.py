"""The project's settings plus the library's test-only app (``tests.testapp``).

pytest uses this module (pyproject.toml), and so do the real ``manage.py`` processes the
tests start (``tests.conftest.Cli``), so that both see the same apps and migrations.
"""

from __future__ import annotations

from settings import *  # noqa: F403
from settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]

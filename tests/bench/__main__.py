"""``python -m tests.bench [--rows N] ...``: what ``make bench`` runs (see cli.py)."""

from __future__ import annotations

import os
import sys

import django

# The project's own settings, as manage.py and the runjob processes it starts use them
# (tests.settings would add the test-only app and its migrations to the database).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
django.setup()

from tests.bench.cli import main  # noqa: E402 - the models load only after django.setup()

sys.exit(main())

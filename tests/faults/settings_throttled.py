"""Project settings whose only health check is the test's switch (tests/faults/
health_checks.py), with a heartbeat and stale window short enough that a runner whose
waits do not beat would look stalled within seconds.

A subprocess selects it with DJANGO_SETTINGS_MODULE=tests.faults.settings_throttled.
"""

from __future__ import annotations

from tests.settings import *  # noqa: F403

BATCHJOBS_HEALTH_CHECKS = ["tests.faults.health_checks.file_switch"]
BATCHJOBS_HEARTBEAT_SECONDS = 1.5
BATCHJOBS_STALE_AFTER_SECONDS = 4.0

"""Project settings with a short lease, for tests that need a live-but-frozen process
(SIGSTOP) to look stalled within seconds rather than the default two minutes.

A subprocess selects it with DJANGO_SETTINGS_MODULE=tests.faults.settings_short_lease.
"""

from __future__ import annotations

from tests.settings import *  # noqa: F403

BATCHJOBS_HEARTBEAT_SECONDS = 0.5
BATCHJOBS_STALE_AFTER_SECONDS = 3.0
